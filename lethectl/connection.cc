#include "lethectl/connection.h"

#include <chrono>
#include <cstdlib>
#include <limits>

#include "base/file.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace lethe::cli {
namespace {

constexpr FlagSpec kCommonFlags[] = {
    {"addr", "HOST:PORT",
     "server address (default: $LETHE_ADDR, else 127.0.0.1:50051)"},
    {"api-key", "KEY", "API key (default: $LETHE_API_KEY)"},
    {"tls", "", "use TLS with the system's root certificates"},
    {"tls-ca", "FILE",
     "use TLS, trusting the CA certificates in FILE (PEM; default: "
     "$LETHE_TLS_CA)"},
    {"tls-cert", "FILE", "client certificate for mTLS (PEM; needs --tls-key)"},
    {"tls-key", "FILE", "private key of --tls-cert (PEM)"},
    {"tls-server-name", "NAME", "name to check in the server's certificate"},
    {"timeout", "SECONDS",
     "deadline of the call (default: 30 for unary calls, none for streams)"},
    {"json", "", "print responses as JSON, one document per line"},
    {"help", "", "show this help"},
};

// A stream's chunks are at most 4 MiB of payload plus framing.
constexpr int kMaxReceiveMessageBytes = 16 << 20;

// Longer deadlines would overflow the clock; a year is "none" in practice.
constexpr double kMaxTimeoutSeconds = 365.0 * 24 * 3600;

std::string EnvOr(const char* name, absl::string_view fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : std::string(fallback);
}

}  // namespace

std::span<const FlagSpec> CommonFlags() { return kCommonFlags; }

absl::StatusOr<ConnectionOptions> ConnectionOptionsFromFlags(
    const ParsedFlags& flags) {
  ConnectionOptions options;
  options.address = flags.Get("addr", EnvOr("LETHE_ADDR", "127.0.0.1:50051"));
  options.api_key = flags.Get("api-key", EnvOr("LETHE_API_KEY", ""));
  options.tls_ca_file = flags.Get("tls-ca", EnvOr("LETHE_TLS_CA", ""));
  options.tls_cert_file = flags.Get("tls-cert");
  options.tls_key_file = flags.Get("tls-key");
  options.tls_server_name = flags.Get("tls-server-name");
  options.tls = flags.Switch("tls") || !options.tls_ca_file.empty() ||
                !options.tls_cert_file.empty();
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key must be given together");
  }
  if (!options.tls && !options.tls_server_name.empty()) {
    return absl::InvalidArgumentError(
        "--tls-server-name needs TLS: add --tls or --tls-ca");
  }
  FlagReader reader(flags);
  options.timeout_seconds = reader.Double("timeout", 0.001, kMaxTimeoutSeconds);
  if (!reader.ok()) return reader.status();
  if (options.address.empty()) {
    return absl::InvalidArgumentError("--addr must not be empty");
  }
  return options;
}

absl::StatusOr<Connection> Connection::Open(ConnectionOptions options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    for (auto [file, pem] :
         {std::pair{&options.tls_ca_file, &ssl.pem_root_certs},
          std::pair{&options.tls_cert_file, &ssl.pem_cert_chain},
          std::pair{&options.tls_key_file, &ssl.pem_private_key}}) {
      if (file->empty()) continue;
      absl::StatusOr<std::string> content = base::ReadFile(*file);
      if (!content.ok()) return content.status();
      *pem = *std::move(content);
    }
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  }
  auto channel = grpc::CreateCustomChannel(options.address, credentials, args);
  return Connection(std::move(options), std::move(channel));
}

std::unique_ptr<grpc::ClientContext> Connection::NewContext(
    bool streaming) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.api_key.empty()) {
    context->AddMetadata("authorization", "Bearer " + options_.api_key);
  }
  std::optional<double> timeout = options_.timeout_seconds;
  if (!timeout && !streaming) timeout = kDefaultUnaryTimeoutSeconds;
  if (timeout) {
    context->set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(*timeout)));
  }
  return context;
}

}  // namespace lethe::cli

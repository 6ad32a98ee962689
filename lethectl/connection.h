// The flags every lethectl command shares, and the gRPC channel and call
// contexts they describe: server address, API key (sent as
// `authorization: Bearer <key>` metadata), TLS or mTLS, and a deadline.
#ifndef LETHE_LETHECTL_CONNECTION_H_
#define LETHE_LETHECTL_CONNECTION_H_

#include <memory>
#include <optional>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "lethectl/flags.h"

namespace lethe::cli {

// --addr, --api-key, --tls*, --timeout, --json, --help.
std::span<const FlagSpec> CommonFlags();

struct ConnectionOptions {
  std::string address;  // host:port
  std::string api_key;  // empty: send no authorization metadata
  bool tls = false;
  std::string tls_ca_file;      // empty: the system's roots
  std::string tls_cert_file;    // client certificate, for mTLS
  std::string tls_key_file;     // its private key
  std::string tls_server_name;  // overrides the name checked in the cert
  // Deadline of each call; nullopt: kDefaultUnaryTimeoutSeconds for unary
  // calls and none for streams (watch, upload, register, download).
  std::optional<double> timeout_seconds;
};

inline constexpr double kDefaultUnaryTimeoutSeconds = 30;

// Reads the common flags, falling back to LETHE_ADDR and LETHE_API_KEY,
// then to 127.0.0.1:50051. INVALID_ARGUMENT for inconsistent flags.
absl::StatusOr<ConnectionOptions> ConnectionOptionsFromFlags(
    const ParsedFlags& flags);

// A channel to the server (it connects on the first call) and the options
// each call needs.
class Connection {
 public:
  // Fails (NOT_FOUND, PERMISSION_DENIED) if a TLS file cannot be read.
  static absl::StatusOr<Connection> Open(ConnectionOptions options);

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  // A context carrying the API key and the deadline for one call.
  std::unique_ptr<grpc::ClientContext> NewContext(bool streaming) const;

 private:
  Connection(ConnectionOptions options, std::shared_ptr<grpc::Channel> channel)
      : options_(std::move(options)), channel_(std::move(channel)) {}

  ConnectionOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace lethe::cli

#endif  // LETHE_LETHECTL_CONNECTION_H_

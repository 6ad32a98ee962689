// Transport security (issue 17, item 7): the server serves TLS unless told
// to serve plaintext, and then only on loopback unless told twice. On the
// in-memory backend; the TLS certificate comes from the openssl command.
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "base/file.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/server.h"
#include "server/subject.h"
#include "storage/memory/backend.h"

namespace lethe::testing {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

TEST(IsLoopbackListenTest, OnlyLocalAddressesAre) {
  for (const char* local :
       {"127.0.0.1:50051", "127.8.9.10:0", "localhost:1", "[::1]:50051",
        "unix:/run/lethe.sock", "unix-abstract:lethe"}) {
    EXPECT_TRUE(server::IsLoopbackListen(local)) << local;
  }
  for (const char* remote :
       {"0.0.0.0:50051", "[::]:50051", "10.0.0.1:50051", "lethe:50051",
        "128.0.0.1:1", "[::1:50051", "50051", "", "[::ffff:127.0.0.1]:1"}) {
    EXPECT_FALSE(server::IsLoopbackListen(remote)) << remote;
  }
}

class ServerTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lethe-transport-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ASSERT_TRUE(server::CreateServerSecret(dir_ + "/secret").ok());
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  server::ServerOptions Options(const std::string& listen) const {
    server::ServerOptions o;
    o.listen = listen;
    o.secrets_file = dir_ + "/secret";
    o.handler_threads = 2;
    return o;
  }

  static absl::StatusOr<std::unique_ptr<server::LetheServer>> Start(
      const server::ServerOptions& o) {
    return server::LetheServer::Start(o, storage::NewMemoryBackend());
  }

  // A self-signed certificate for 127.0.0.1 and localhost.
  void MakeCertificate() {
    const std::string cmd = absl::StrCat(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
        "-nodes -days 1 -subj /CN=lethe-test -addext "
        "subjectAltName=IP:127.0.0.1,DNS:localhost -keyout ",
        dir_, "/tls.key -out ", dir_, "/tls.crt 2>/dev/null");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl (package openssl)";
  }

  // Always connects to 127.0.0.1 (resolving a name would go through
  // c-ares, whose allocations LeakSanitizer reports); `server_name` is the
  // name the certificate is checked against, when given.
  static grpc::Status Check(
      int port, const std::shared_ptr<grpc::ChannelCredentials>& creds,
      const std::string& server_name = "") {
    grpc::ChannelArguments args;
    if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
    auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                             creds, args);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    HealthCheckRequest req;
    HealthCheckResponse resp;
    return Health::NewStub(channel)->Check(&ctx, req, &resp);
  }

  std::string dir_;
};

TEST_F(ServerTransportTest, RefusesPlaintextUnlessAsked) {
  auto server = Start(Options("127.0.0.1:0"));
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(server.status().message().find("--tls-cert"), std::string::npos)
      << server.status();
  EXPECT_NE(server.status().message().find("--insecure-plaintext"),
            std::string::npos)
      << server.status();
}

TEST_F(ServerTransportTest, PlaintextIsLoopbackOnlyUnlessAskedTwice) {
  auto o = Options("0.0.0.0:0");
  o.insecure_plaintext = true;
  auto refused = Start(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("0.0.0.0:0 is not one"),
            std::string::npos)
      << refused.status();

  o.insecure_plaintext_non_loopback = true;
  auto served = Start(o);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_TRUE(
      Check((*served)->port(), grpc::InsecureChannelCredentials()).ok());

  auto loopback = Options("127.0.0.1:0");
  loopback.insecure_plaintext = true;
  auto local = Start(loopback);
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_TRUE(Check((*local)->port(), grpc::InsecureChannelCredentials()).ok());
}

TEST_F(ServerTransportTest, TlsAndPlaintextExcludeEachOther) {
  MakeCertificate();
  auto o = Options("127.0.0.1:0");
  o.tls_cert_file = dir_ + "/tls.crt";
  o.tls_key_file = dir_ + "/tls.key";
  o.insecure_plaintext = true;
  auto server = Start(o);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ServerTransportTest, ServesTlsOnAnyInterfaceAndNoPlaintext) {
  MakeCertificate();
  auto o = Options("0.0.0.0:0");
  o.tls_cert_file = dir_ + "/tls.crt";
  o.tls_key_file = dir_ + "/tls.key";
  auto server = Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();

  auto ca = base::ReadFile(dir_ + "/tls.crt");
  ASSERT_TRUE(ca.ok()) << ca.status();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = *ca;
  EXPECT_TRUE(Check(port, grpc::SslCredentials(ssl)).ok());
  EXPECT_TRUE(Check(port, grpc::SslCredentials(ssl), "localhost").ok());
  // The name is checked: one the certificate does not carry fails.
  EXPECT_FALSE(
      Check(port, grpc::SslCredentials(ssl), "elsewhere.example").ok());
  // A plaintext client gets no answer from a TLS port.
  const grpc::Status plain = Check(port, grpc::InsecureChannelCredentials());
  EXPECT_FALSE(plain.ok());
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::UNAVAILABLE)
      << plain.error_message();
  // Nor does a client that does not trust the certificate.
  EXPECT_FALSE(
      Check(port, grpc::SslCredentials(grpc::SslCredentialsOptions())).ok());
}

}  // namespace
}  // namespace lethe::testing

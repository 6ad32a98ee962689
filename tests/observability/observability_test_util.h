// What the HTTP-level observability tests share: a minimal HTTP/1.0 GET
// over loopback, URL query encoding, and `lethe serve` as a child process
// with its /metrics endpoint.
#ifndef LETHE_TESTS_OBSERVABILITY_OBSERVABILITY_TEST_UTIL_H_
#define LETHE_TESTS_OBSERVABILITY_OBSERVABILITY_TEST_UTIL_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/server/test_server.h"
#include "tests/support/process.h"

namespace lethe::testing {

struct HttpResponse {
  int status = 0;
  std::string body;
};

// GET http://127.0.0.1:port/path_and_query; each socket read and write
// times out after `timeout`. UNAVAILABLE if it cannot connect or the
// answer is not HTTP.
absl::StatusOr<HttpResponse> HttpGet(
    int port, const std::string& path,
    std::chrono::seconds timeout = std::chrono::seconds(10));

// Percent-encodes everything but unreserved characters (RFC 3986 2.3).
std::string UrlEncode(const std::string& s);

// `lethe serve` on the database and secret of `ts`, gRPC and /metrics on
// free loopback ports, stderr (JSON lines) in `log_path`.
class LetheServeProcess {
 public:
  static std::unique_ptr<LetheServeProcess> Start(const TestServer& ts,
                                                  const std::string& log_path);
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  Subprocess& process() { return *process_; }

 private:
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

// The value of the first line of a Prometheus text exposition that starts
// with `name` followed by '{' or ' ' and contains every one of
// `label_pairs` (`key="value"`); nullopt-like -1 if there is none.
double ExpositionValue(const std::string& text, const std::string& name,
                       const std::vector<std::string>& label_pairs);

}  // namespace lethe::testing

#endif  // LETHE_TESTS_OBSERVABILITY_OBSERVABILITY_TEST_UTIL_H_

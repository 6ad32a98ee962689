// MetricsEndpoint as an HTTP server: what it serves, what it refuses, and
// what it says when it cannot listen. No database; raw sockets, so that
// malformed and non-GET requests can be sent too.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include "observability/metrics.h"

namespace lethe::observability {
namespace {

// Sends `request` as is to 127.0.0.1:port and returns all the server wrote
// before closing (empty if it could not connect).
std::string Exchange(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
      out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

std::string StatusLine(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

class MetricsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    prometheus::BuildCounter()
        .Name("lethe_test_events_total")
        .Help("Events in this test")
        .Register(*registry_)
        .Add({{"kind", "a"}})
        .Increment(3);
    auto started = MetricsEndpoint::Start("127.0.0.1:0");
    ASSERT_TRUE(started.ok()) << started.status();
    endpoint_ = std::move(*started);
    endpoint_->Register(registry_);
  }

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<MetricsEndpoint> endpoint_;
};

TEST_F(MetricsHttpTest, ServesTheRegistryInTextFormat) {
  ASSERT_GT(endpoint_->port(), 0);
  const std::string r =
      Exchange(endpoint_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(StatusLine(r), "HTTP/1.1 200 OK");
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("lethe_test_events_total{kind=\"a\"} 3"), std::string::npos)
      << r;
  const std::string body = r.substr(r.find("\r\n\r\n") + 4);
  EXPECT_NE(r.find("Content-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos)
      << r;
  // A query string is ignored; HEAD has the headers and no body.
  EXPECT_EQ(StatusLine(Exchange(endpoint_->port(),
                                "GET /metrics?x=1 HTTP/1.0\r\n\r\n")),
            "HTTP/1.1 200 OK");
  const std::string head =
      Exchange(endpoint_->port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(StatusLine(head), "HTTP/1.1 200 OK");
  EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "");
}

TEST_F(MetricsHttpTest, RefusesOtherPathsMethodsAndMalformedRequests) {
  EXPECT_EQ(StatusLine(Exchange(endpoint_->port(), "GET / HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 404 Not Found");
  const std::string post =
      Exchange(endpoint_->port(), "POST /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(StatusLine(post), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_NE(post.find("Allow: GET, HEAD"), std::string::npos);
  EXPECT_EQ(StatusLine(Exchange(endpoint_->port(), "garbage\r\n\r\n")),
            "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(
      StatusLine(Exchange(endpoint_->port(), "GET /metrics HTTP/1.1\r\nX: " +
                                                 std::string(9000, 'a'))),
      "HTTP/1.1 431 Request Header Fields Too Large");
  // And it still answers after all of those.
  EXPECT_EQ(
      StatusLine(Exchange(endpoint_->port(), "GET /metrics HTTP/1.1\r\n\r\n")),
      "HTTP/1.1 200 OK");
}

TEST_F(MetricsHttpTest, ACollectableGoneIsNoLongerScraped) {
  registry_.reset();
  const std::string r =
      Exchange(endpoint_->port(), "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(StatusLine(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(r.find("lethe_test_events_total"), std::string::npos) << r;
}

TEST(MetricsEndpointStartTest, BadAddressesAndBusyPortsAreClearErrors) {
  for (const char* bad :
       {"", "9464", "host:", "127.0.0.1:http", "127.0.0.1:70000"}) {
    auto e = MetricsEndpoint::Start(bad);
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  auto first = MetricsEndpoint::Start("127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  const int port = (*first)->port();
  auto busy = MetricsEndpoint::Start("127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(busy.status().message().find("cannot serve metrics"),
            std::string::npos)
      << busy.status();
  // Stopping frees the port at once.
  first->reset();
  auto again = MetricsEndpoint::Start("127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(again.ok()) << again.status();
  // IPv6 literal in brackets.
  auto v6 = MetricsEndpoint::Start("[::1]:0");
  if (v6.ok()) {
    EXPECT_GT((*v6)->port(), 0);
  } else {  // a machine without IPv6 loopback: refused, not misparsed
    EXPECT_EQ(v6.status().code(), absl::StatusCode::kUnavailable)
        << v6.status();
  }
}

}  // namespace
}  // namespace lethe::observability

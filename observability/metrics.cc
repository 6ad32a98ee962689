#include "observability/metrics.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include <prometheus/text_serializer.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace lethe::observability {
namespace {

constexpr size_t kMaxRequestBytes = 8192;
constexpr int kRequestTimeoutMs = 5000;

std::string Errno(int err) { return std::strerror(err); }

// Writes all of `data`; false if the peer went away or timed out.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string Response(const std::string& status, const std::string& content_type,
                     const std::string& body, bool head,
                     const std::string& extra_headers = "") {
  std::string out =
      absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                   "\r\nContent-Length: ", body.size(), "\r\n", extra_headers,
                   "Connection: close\r\n\r\n");
  if (!head) out.append(body);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (listen.empty() || colon == std::string::npos ||
      colon + 1 == listen.size()) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address '", listen,
                                                   "' is not host:port (e.g. ",
                                                   "127.0.0.1:9464)"));
  }
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address '", listen, "': the port must be 0..65535"));
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // [::1]:9464
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int gai = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                                port.c_str(), &hints, &found);
  if (gai != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve metrics on ", listen, ": ", ::gai_strerror(gai)));
  }
  int fd = -1;
  int last_error = 0;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 64) == 0) {
      break;
    }
    last_error = errno;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve metrics on ", listen, ": ", Errno(last_error)));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int bound_port =
      bound.ss_family == AF_INET6
          ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
          : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics: pipe: ", Errno(err)));
  }
  return std::unique_ptr<MetricsEndpoint>(
      new MetricsEndpoint(fd, wake[0], wake[1], bound_port));
}

MetricsEndpoint::MetricsEndpoint(int listen_fd, int wake_read, int wake_write,
                                 int port)
    : listen_fd_(listen_fd),
      wake_read_(wake_read),
      wake_write_(wake_write),
      port_(port),
      thread_([this] { Serve(); }) {}

MetricsEndpoint::~MetricsEndpoint() {
  ::close(wake_write_);  // EOF on wake_read_ stops Serve()
  thread_.join();
  ::close(wake_read_);
  ::close(listen_fd_);
}

void MetricsEndpoint::Register(
    const std::weak_ptr<prometheus::Collectable>& collectable) {
  std::lock_guard lock(mu_);
  collectables_.push_back(collectable);
}

std::string MetricsEndpoint::Exposition() {
  std::vector<std::shared_ptr<prometheus::Collectable>> live;
  {
    std::lock_guard lock(mu_);
    for (const auto& weak : collectables_) {
      if (auto c = weak.lock()) live.push_back(std::move(c));
    }
  }
  std::vector<prometheus::MetricFamily> families;
  for (const auto& c : live) {
    auto some = c->Collect();
    families.insert(families.end(), std::make_move_iterator(some.begin()),
                    std::make_move_iterator(some.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

void MetricsEndpoint::Serve() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int conn = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;  // the client gave up, or out of descriptors
    Answer(conn);
    ::close(conn);
  }
}

void MetricsEndpoint::Answer(int fd) {
  const timeval timeout{kRequestTimeoutMs / 1000, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  // Read the request head; the body of a GET is ignored.
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos &&
         head.find("\n\n") == std::string::npos) {
    if (head.size() > kMaxRequestBytes) {
      WriteAll(fd, Response("431 Request Header Fields Too Large", "text/plain",
                            "request head too large\n", false));
      return;
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // closed, reset or timed out: nothing to answer
    head.append(buf, static_cast<size_t>(n));
  }
  // Request line: METHOD SP TARGET SP HTTP/x.y
  const std::string line = head.substr(0, head.find_first_of("\r\n"));
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos ||
      line.compare(sp2 + 1, 5, "HTTP/") != 0) {
    WriteAll(fd, Response("400 Bad Request", "text/plain",
                          "malformed request line\n", false));
    return;
  }
  const std::string method = line.substr(0, sp1);
  std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    WriteAll(fd,
             Response("405 Method Not Allowed", "text/plain",
                      "only GET and HEAD\n", false, "Allow: GET, HEAD\r\n"));
    return;
  }
  if (path != "/metrics") {
    WriteAll(fd, Response("404 Not Found", "text/plain",
                          "metrics are at /metrics\n", head_only));
    return;
  }
  std::string body;
  try {
    body = Exposition();
  } catch (const std::exception& e) {
    WriteAll(fd, Response("500 Internal Server Error", "text/plain",
                          absl::StrCat("collecting metrics failed: ", e.what(),
                                       "\n"),
                          head_only));
    return;
  }
  WriteAll(fd, Response("200 OK", "text/plain; version=0.0.4; charset=utf-8",
                        body, head_only));
}

DatabaseMetrics::DatabaseMetrics(prometheus::Registry& registry)
    : errors_(prometheus::BuildCounter()
                  .Name("lethe_database_errors_total")
                  .Help("PostgreSQL operations that failed, per operation")
                  .Register(registry)) {}

void DatabaseMetrics::RecordError(std::string_view operation) {
  errors_.Add({{"operation", std::string(operation)}}).Increment();
}

IntakeMetrics::IntakeMetrics(prometheus::Registry& registry)
    : batch_size_(
          prometheus::BuildHistogram()
              .Name("lethe_intake_batch_size")
              .Help("SubmitErasure calls written per batch (group "
                    "commit)")
              .Register(registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16,
                                                               32, 64, 128})),
      batch_seconds_(prometheus::BuildHistogram()
                         .Name("lethe_intake_batch_seconds")
                         .Help("Time to write and commit one batch of "
                               "SubmitErasure calls")
                         .Register(registry)
                         .Add({}, prometheus::Histogram::BucketBoundaries{
                                      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05, 0.1, 0.25, 1})) {}

void IntakeMetrics::RecordBatch(size_t submissions, double seconds) {
  batch_size_.Observe(static_cast<double>(submissions));
  batch_seconds_.Observe(seconds);
}

}  // namespace lethe::observability

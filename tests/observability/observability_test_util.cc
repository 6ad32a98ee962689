#include "tests/observability/observability_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <csignal>
#include <sstream>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace lethe::testing {

absl::StatusOr<HttpResponse> HttpGet(int port, const std::string& path,
                                     std::chrono::seconds timeout) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::UnavailableError("socket() failed");
  timeval tv{static_cast<time_t>(timeout.count()), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to ", port));
  }
  const std::string request =
      absl::StrCat("GET ", path,
                   " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("send failed");
  }
  std::string raw;
  char buf[8192];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      close(fd);
      return absl::UnavailableError("recv failed or timed out");
    }
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) {
    return absl::UnavailableError(
        absl::StrCat("not HTTP: ", raw.substr(0, 80)));
  }
  HttpResponse r;
  r.status = std::atoi(raw.c_str() + raw.find(' ') + 1);
  r.body = raw.substr(end + 4);
  // civetweb may answer HTTP/1.0 requests chunked; undo that.
  if (raw.substr(0, end).find("Transfer-Encoding: chunked") !=
      std::string::npos) {
    std::string body;
    size_t pos = 0;
    while (pos < r.body.size()) {
      const size_t eol = r.body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      const size_t len = std::stoul(r.body.substr(pos, eol - pos), nullptr, 16);
      if (len == 0) break;
      body.append(r.body, eol + 2, len);
      pos = eol + 2 + len + 2;
    }
    r.body = std::move(body);
  }
  return r;
}

std::string UrlEncode(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::unique_ptr<LetheServeProcess> LetheServeProcess::Start(
    const TestServer& ts, const std::string& log_path) {
  auto p = std::make_unique<LetheServeProcess>();
  p->grpc_port_ = FreePort();
  p->metrics_port_ = FreePort();
  SubprocessOptions o;
  o.program = LETHE_BINARY;
  o.args = {"serve",
            "--insecure-plaintext",
            "--listen",
            absl::StrCat("127.0.0.1:", p->grpc_port_),
            "--metrics-listen",
            absl::StrCat("127.0.0.1:", p->metrics_port_),
            "--database-url",
            ts.database_url(),
            "--secrets-file",
            ts.secrets_file(),
            "--shutdown-grace-seconds",
            "5"};
  o.stderr_path = log_path;
  o.stdout_path = log_path;
  o.parent_death_signal = SIGKILL;
  auto started = Subprocess::Start(o);
  EXPECT_TRUE(started.ok()) << started.status();
  if (!started.ok()) return nullptr;
  p->process_ = std::move(*started);
  const bool up = WaitForPort(p->grpc_port_, std::chrono::seconds(20)) &&
                  WaitForPort(p->metrics_port_, std::chrono::seconds(5));
  EXPECT_TRUE(up) << ReadFileOrEmpty(log_path);
  return up ? std::move(p) : nullptr;
}

double ExpositionValue(const std::string& text, const std::string& name,
                       const std::vector<std::string>& label_pairs) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
    const char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    bool all = true;
    for (const auto& pair : label_pairs) {
      if (line.find(pair) == std::string::npos) all = false;
    }
    if (!all) continue;
    const size_t space = line.rfind(' ');
    return std::stod(line.substr(space + 1));
  }
  return -1;
}

}  // namespace lethe::testing

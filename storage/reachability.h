// When PostgreSQL cannot be reached: what API clients are told, what
// operators log, and how processes wait for it at start.
//
// A failed connection's libpq text names the database's host, port and user.
// StatusFromCurrentException (database.h) therefore gives UNAVAILABLE errors
// a fixed message that is safe to show to any API client, and attaches the
// libpq text as a payload under kErrorDetailUrl; ErrorDetail() recovers it
// for logs. Neither ever holds the URL's password (libpq does not print it).
#ifndef LETHE_STORAGE_REACHABILITY_H_
#define LETHE_STORAGE_REACHABILITY_H_

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace lethe::storage {

// The payload key of a storage error's detail (absl::Status::GetPayload).
inline constexpr absl::string_view kErrorDetailUrl =
    "type.lethe.dev/lethe.storage.ErrorDetail";

// The message of an UNAVAILABLE error caused by the database.
inline constexpr absl::string_view kDatabaseUnavailable =
    "database unavailable; retry with backoff";

// `st` with `detail` attached for logs; its message is what clients see.
inline absl::Status WithErrorDetail(absl::Status st, absl::string_view detail) {
  st.SetPayload(kErrorDetailUrl, absl::Cord(detail));
  return st;
}

// The message and, when present, the detail: for logs, never for clients.
inline std::string ErrorDetail(const absl::Status& st) {
  auto detail = st.GetPayload(kErrorDetailUrl);
  if (!detail) return std::string(st.message());
  return absl::StrCat(st.message(), ": ", std::string(*detail));
}

// `url` with its password replaced by "***", in both libpq forms:
// postgresql://user:PASSWORD@host/db and "host=h password=PASSWORD".
inline std::string RedactedDatabaseUrl(std::string url) {
  for (std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (url.rfind(scheme, 0) != 0) continue;
    const size_t start = scheme.size();
    const size_t at = url.find('@', start);
    const size_t colon = url.find(':', start);
    if (at != std::string::npos && colon < at) {
      url.replace(colon + 1, at - colon - 1, "***");
    }
    return url;
  }
  for (size_t pos = url.find("password="); pos != std::string::npos;
       pos = url.find("password=", pos + 1)) {
    size_t value = pos + 9;
    size_t end = value;
    if (end < url.size() && url[end] == '\'') {
      end = url.find('\'', end + 1);
      end = end == std::string::npos ? url.size() : end + 1;
    } else {
      end = url.find(' ', value);
      if (end == std::string::npos) end = url.size();
    }
    url.replace(value, end - value, "***");
  }
  return url;
}

// Capped exponential backoff for waiting on the database at start: 0.5 s,
// doubling, at most 10 s.
struct Backoff {
  std::chrono::milliseconds first{500};
  std::chrono::milliseconds max{10000};
};

// Calls `attempt` until it returns anything but UNAVAILABLE and returns
// that. After each UNAVAILABLE, `pause(status, attempt_number, delay)`
// logs and sleeps `delay`; when it returns false (the process is stopping)
// the last UNAVAILABLE is returned.
inline absl::Status RetryWhileUnavailable(
    const std::function<absl::Status()>& attempt,
    const std::function<bool(const absl::Status&, int,
                             std::chrono::milliseconds)>& pause,
    Backoff backoff = {}) {
  auto delay = backoff.first;
  for (int n = 1;; ++n) {
    absl::Status st = attempt();
    if (!absl::IsUnavailable(st)) return st;
    if (!pause(st, n, delay)) return st;
    delay = std::min(delay * 2, backoff.max);
  }
}

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_REACHABILITY_H_

// JSON string literals (RFC 8259 section 7), written once for the whole
// tree: the certificate format's canonical JSON (cert/json.h) and the
// structured log lines (observability/log.h). core/ keeps a copy of its own
// for its reports (core/report_json.cc): it builds without base/.
#ifndef LETHE_BASE_JSON_H_
#define LETHE_BASE_JSON_H_

#include <string>
#include <string_view>

namespace lethe::base {

enum class JsonString {
  // '"', '\' and the C0 controls escaped (\n, \r, \t, \b, \f by name, the
  // rest as \u00XX); every other byte as it is. The certificate format's
  // canonical form: signatures cover these bytes, so it never changes.
  kCanonical,
  // kCanonical, and also DEL escaped and every byte that does not start a
  // valid UTF-8 sequence written as U+FFFD, so the result is valid UTF-8
  // whatever it is given (log lines carry text from clients).
  kValidUtf8,
};

// Appends `s` to `out` as a quoted JSON string.
void AppendJsonString(std::string* out, std::string_view s, JsonString mode);

}  // namespace lethe::base

#endif  // LETHE_BASE_JSON_H_

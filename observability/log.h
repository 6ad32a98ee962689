// Structured logs: one JSON object per line on stderr, for log shippers
// (Loki, Fluent Bit, journald) to index without parsing free text.
//
//   {"time":"2024-05-01T12:34:56.789Z","level":"info","component":"server",
//    "request_id":"5f0c...","message":"erasure submitted","state":"QUEUED"}
//
// Fields, in this order: time (RFC 3339, UTC, milliseconds), level (debug,
// info, warn, error), component, then request_id, task_id and model_id when
// the LogContext sets them, message, then the extra fields of the call.
//
// Personal data. lethe exists to forget people; its logs must not remember
// them. There is deliberately no field for a data subject. Callers must
// never pass a subject id, a subject key, an API token, a secret or record
// contents, neither in `message` nor in an extra field. As a backstop, an
// extra field whose key names such a thing (see IsSensitiveKey) is written
// as "[redacted]"; the message cannot be checked, so keep it a constant
// string and put identifiers of lethe's own objects in the context.
//
// Thread safety: Logger and the sinks here are safe to use from any number
// of threads; each line is written whole, never interleaved.
#ifndef LETHE_OBSERVABILITY_LOG_H_
#define LETHE_OBSERVABILITY_LOG_H_

#include <concepts>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>

#include "absl/status/statusor.h"

namespace lethe::observability {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// "debug", "info", "warn", "error".
const char* LogLevelName(LogLevel level);
// Accepts the names above (and "warning"), any case. INVALID_ARGUMENT
// otherwise, naming the accepted values.
absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name);

// The lethe objects a line is about. Empty / 0 fields are left out.
struct LogContext {
  std::string_view request_id;  // erasure request UUID
  int64_t task_id = 0;          // erasure_tasks.id
  std::string_view model_id;    // model UUID
};

// One extra key/value. Keys should be snake_case constants; a key equal
// to a standard field name (time, level, ...) is written with an "x_"
// prefix so that it cannot shadow it.
class LogField {
 public:
  LogField(std::string_view key, std::string_view value)
      : key_(key), value_(value) {}
  LogField(std::string_view key, const char* value)
      : key_(key), value_(std::string_view(value)) {}
  LogField(std::string_view key, const std::string& value)
      : key_(key), value_(std::string_view(value)) {}
  LogField(std::string_view key, bool value) : key_(key), value_(value) {}
  template <std::integral T>
  requires(!std::same_as<T, bool>) LogField(std::string_view key, T value)
      : key_(key), value_(static_cast<int64_t>(value)) {}
  LogField(std::string_view key, double value) : key_(key), value_(value) {}

  std::string_view key() const { return key_; }
  // Appends `"key":value` (escaped, redacted if sensitive) to `out`.
  void AppendTo(std::string* out) const;

 private:
  std::string_view key_;
  std::variant<std::string_view, int64_t, double, bool> value_;
};

// Where finished lines go. Write receives one line including its '\n' and
// must be safe to call from several threads at once.
class LogSink {
 public:
  virtual ~LogSink() = default;
  virtual void Write(std::string_view line) = 0;
};

// Writes to a stdio stream (stderr by default), flushing after each line.
class FileLogSink final : public LogSink {
 public:
  explicit FileLogSink(std::FILE* file = stderr) : file_(file) {}
  void Write(std::string_view line) override;

 private:
  std::mutex mu_;
  std::FILE* const file_;
};

class Logger {
 public:
  // Lines at `level` or above go to `sink`, tagged with `component`.
  Logger(std::shared_ptr<LogSink> sink, LogLevel level, std::string component);
  // A logger on stderr.
  static Logger Stderr(LogLevel level, std::string component);

  // The same sink and level, another component.
  Logger WithComponent(std::string component) const;

  bool Enabled(LogLevel level) const { return level >= level_; }
  LogLevel level() const { return level_; }

  void Log(LogLevel level, const LogContext& context, std::string_view message,
           std::initializer_list<LogField> fields = {}) const;
  void Debug(const LogContext& c, std::string_view message,
             std::initializer_list<LogField> fields = {}) const {
    Log(LogLevel::kDebug, c, message, fields);
  }
  void Info(const LogContext& c, std::string_view message,
            std::initializer_list<LogField> fields = {}) const {
    Log(LogLevel::kInfo, c, message, fields);
  }
  void Warn(const LogContext& c, std::string_view message,
            std::initializer_list<LogField> fields = {}) const {
    Log(LogLevel::kWarn, c, message, fields);
  }
  void Error(const LogContext& c, std::string_view message,
             std::initializer_list<LogField> fields = {}) const {
    Log(LogLevel::kError, c, message, fields);
  }

 private:
  std::shared_ptr<LogSink> sink_;
  LogLevel level_;
  std::string component_;
};

// Whether an extra-field key names personal data or a credential: it
// contains "subject", "secret", "token", "password", "passphrase",
// "credential", "authorization" or "cookie", or ends in "key" (api_key,
// idempotency_key: client-chosen strings may hold an e-mail address). Case
// is ignored. "key_id" (an API key's public id) is not sensitive.
bool IsSensitiveKey(std::string_view key);

// Appends `s` as a JSON string literal (RFC 8259 section 7): quotes,
// backslash and control characters escaped; bytes that are not valid UTF-8
// become U+FFFD, so every line is valid UTF-8 JSON
// (base::AppendJsonString, JsonString::kValidUtf8).
void AppendJsonString(std::string* out, std::string_view s);

// RFC 3339 UTC timestamp with milliseconds: 2024-05-01T12:34:56.789Z.
std::string Rfc3339Millis(int64_t unix_millis);

}  // namespace lethe::observability

#endif  // LETHE_OBSERVABILITY_LOG_H_

#include "observability/log.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <ctime>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/json.h"

namespace lethe::observability {
namespace {

constexpr std::array<std::string_view, 7> kStandardFields = {
    "time",    "level",    "component", "request_id",
    "task_id", "model_id", "message"};

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

void AppendKey(std::string* out, std::string_view key) {
  out->push_back(',');
  AppendJsonString(out, key);
  out->push_back(':');
}

}  // namespace

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name) {
  const std::string n = Lower(name);
  if (n == "debug") return LogLevel::kDebug;
  if (n == "info") return LogLevel::kInfo;
  if (n == "warn" || n == "warning") return LogLevel::kWarn;
  if (n == "error") return LogLevel::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("log level '", std::string(name),
                   "' is not one of debug, info, warn, error"));
}

bool IsSensitiveKey(std::string_view key) {
  const std::string k = Lower(key);
  for (std::string_view word :
       {"subject", "secret", "token", "password", "passphrase", "credential",
        "authorization", "cookie"}) {
    if (k.find(word) != std::string::npos) return true;
  }
  return k.size() >= 3 && k.compare(k.size() - 3, 3, "key") == 0;
}

void AppendJsonString(std::string* out, std::string_view s) {
  base::AppendJsonString(out, s, base::JsonString::kValidUtf8);
}

std::string Rfc3339Millis(int64_t unix_millis) {
  const time_t secs = static_cast<time_t>(unix_millis / 1000);
  const int millis = static_cast<int>(unix_millis % 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[80];  // room for any int the compiler cannot rule out
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, millis);
  return buf;
}

void LogField::AppendTo(std::string* out) const {
  const bool standard =
      std::find(kStandardFields.begin(), kStandardFields.end(), key_) !=
      kStandardFields.end();
  AppendKey(out, standard ? "x_" + std::string(key_) : std::string(key_));
  if (IsSensitiveKey(key_)) {
    out->append("\"[redacted]\"");
    return;
  }
  if (const auto* s = std::get_if<std::string_view>(&value_)) {
    AppendJsonString(out, *s);
  } else if (const auto* i = std::get_if<int64_t>(&value_)) {
    absl::StrAppend(out, *i);
  } else if (const auto* d = std::get_if<double>(&value_)) {
    // JSON has no NaN or infinity.
    if (*d != *d || *d > 1.7976931348623157e308 ||
        *d < -1.7976931348623157e308) {
      out->append("null");
    } else {
      absl::StrAppend(out, *d);
    }
  } else {
    out->append(std::get<bool>(value_) ? "true" : "false");
  }
}

void FileLogSink::Write(std::string_view line) {
  std::lock_guard lock(mu_);
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

Logger::Logger(std::shared_ptr<LogSink> sink, LogLevel level,
               std::string component)
    : sink_(std::move(sink)), level_(level), component_(std::move(component)) {}

Logger Logger::Stderr(LogLevel level, std::string component) {
  // One sink for the whole process, so that lines from several loggers on
  // stderr never interleave.
  static const auto* sink =
      new std::shared_ptr<LogSink>(std::make_shared<FileLogSink>(stderr));
  return Logger(*sink, level, std::move(component));
}

Logger Logger::WithComponent(std::string component) const {
  return Logger(sink_, level_, std::move(component));
}

void Logger::Log(LogLevel level, const LogContext& context,
                 std::string_view message,
                 std::initializer_list<LogField> fields) const {
  if (!Enabled(level)) return;
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count();
  std::string line;
  line.reserve(160);
  line.append(R"({"time":")");
  line.append(Rfc3339Millis(now_ms));
  line.append(R"(","level":")");
  line.append(LogLevelName(level));
  line.push_back('"');
  AppendKey(&line, "component");
  AppendJsonString(&line, component_);
  if (!context.request_id.empty()) {
    AppendKey(&line, "request_id");
    AppendJsonString(&line, context.request_id);
  }
  if (context.task_id != 0) {
    AppendKey(&line, "task_id");
    absl::StrAppend(&line, context.task_id);
  }
  if (!context.model_id.empty()) {
    AppendKey(&line, "model_id");
    AppendJsonString(&line, context.model_id);
  }
  AppendKey(&line, "message");
  AppendJsonString(&line, message);
  for (const LogField& f : fields) f.AppendTo(&line);
  line.append("}\n");
  sink_->Write(line);
}

}  // namespace lethe::observability

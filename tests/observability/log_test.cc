// The JSON-lines logger: every line is valid JSON with the standard fields
// first, hostile strings are escaped, sensitive keys are redacted.
#include "observability/log.h"

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

namespace lethe::observability {
namespace {

class CaptureSink final : public LogSink {
 public:
  void Write(std::string_view line) override {
    std::lock_guard lock(mu_);
    lines_.emplace_back(line);
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

google::protobuf::Struct Parse(const std::string& line) {
  google::protobuf::Struct s;
  auto st = google::protobuf::util::JsonStringToMessage(line, &s);
  EXPECT_TRUE(st.ok()) << st.ToString() << " in: " << line;
  return s;
}

std::string Json(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

TEST(LogTest, LineHasStandardFieldsInOrderAndEndsInNewline) {
  auto sink = std::make_shared<CaptureSink>();
  Logger log(sink, LogLevel::kInfo, "worker");
  log.Info({.request_id = "r-1", .task_id = 42, .model_id = "m-1"},
           "task claimed", {{"attempt", 2}, {"ok", true}, {"ratio", 0.5}});
  ASSERT_EQ(sink->lines().size(), 1u);
  const std::string line = sink->lines()[0];
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_EQ(line.rfind("{\"time\":\"", 0), 0u) << line;
  const size_t order[] = {line.find(R"("level":"info")"),
                          line.find(R"("component":"worker")"),
                          line.find(R"("request_id":"r-1")"),
                          line.find("\"task_id\":42"),
                          line.find(R"("model_id":"m-1")"),
                          line.find(R"("message":"task claimed")"),
                          line.find("\"attempt\":2")};
  for (size_t i = 0; i < std::size(order); ++i) {
    ASSERT_NE(order[i], std::string::npos) << i << ": " << line;
    if (i > 0) {
      EXPECT_LT(order[i - 1], order[i]) << line;
    }
  }
  auto s = Parse(line);
  EXPECT_EQ(s.fields().at("ok").bool_value(), true);
  EXPECT_EQ(s.fields().at("ratio").number_value(), 0.5);
  EXPECT_EQ(s.fields().at("task_id").number_value(), 42);
}

TEST(LogTest, EmptyContextFieldsAreLeftOut) {
  auto sink = std::make_shared<CaptureSink>();
  Logger(sink, LogLevel::kInfo, "server").Info({}, "listening");
  auto s = Parse(sink->lines().at(0));
  EXPECT_EQ(s.fields().count("request_id"), 0u);
  EXPECT_EQ(s.fields().count("task_id"), 0u);
  EXPECT_EQ(s.fields().count("model_id"), 0u);
  EXPECT_EQ(s.fields().at("message").string_value(), "listening");
}

TEST(LogTest, TimeIsRfc3339UtcWithMilliseconds) {
  EXPECT_EQ(Rfc3339Millis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(Rfc3339Millis(1714566896789), "2024-05-01T12:34:56.789Z");
  auto sink = std::make_shared<CaptureSink>();
  Logger(sink, LogLevel::kInfo, "c").Info({}, "m");
  const std::string t =
      Parse(sink->lines().at(0)).fields().at("time").string_value();
  ASSERT_EQ(t.size(), 24u) << t;
  EXPECT_EQ(t[10], 'T');
  EXPECT_EQ(t[19], '.');
  EXPECT_EQ(t.back(), 'Z');
}

TEST(LogTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(Json("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(Json("l1\nl2\r\t"), R"("l1\nl2\r\t")");
  EXPECT_EQ(Json(std::string("\x01\x1f\x7f", 3)), R"("\u0001\u001f\u007f")");
  EXPECT_EQ(Json(std::string("nul\0x", 5)), R"("nul\u0000x")");
  EXPECT_EQ(Json("\b\f"), R"("\b\f")");
}

TEST(LogTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(Json("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"),
            "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"");
  EXPECT_EQ(Json("\xff"), R"("\ufffd")");
  EXPECT_EQ(Json("\xc3"), R"("\ufffd")");                      // truncated
  EXPECT_EQ(Json("\xc0\xaf"), R"("\ufffd\ufffd")");            // overlong '/'
  EXPECT_EQ(Json("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // surrogate
}

TEST(LogTest, HostileMessageAndValuesStillParseToTheSameStrings) {
  auto sink = std::make_shared<CaptureSink>();
  const std::string evil = "\"},{\"level\":\"error\"\n\\u0000";
  Logger(sink, LogLevel::kInfo, evil)
      .Info({.request_id = evil}, evil, {{"detail", evil}});
  ASSERT_EQ(sink->lines().size(), 1u);
  auto s = Parse(sink->lines()[0]);
  EXPECT_EQ(s.fields().at("level").string_value(), "info");
  EXPECT_EQ(s.fields().at("component").string_value(), evil);
  EXPECT_EQ(s.fields().at("request_id").string_value(), evil);
  EXPECT_EQ(s.fields().at("message").string_value(), evil);
  EXPECT_EQ(s.fields().at("detail").string_value(), evil);
}

TEST(LogTest, SensitiveKeysAreRedacted) {
  auto sink = std::make_shared<CaptureSink>();
  Logger(sink, LogLevel::kInfo, "c")
      .Info({}, "m",
            {{"subject_id", "alice@example.com"},
             {"Subject", "alice"},
             {"idempotency_key", "alice-2024"},
             {"api_token", "t0k"},
             {"server_secret", "s3cret"},
             {"authorization", "Bearer x"},
             {"key_id", "k_123"},
             {"state", "QUEUED"}});
  const std::string line = sink->lines().at(0);
  for (const char* leaked : {"alice", "t0k", "s3cret", "Bearer"}) {
    EXPECT_EQ(line.find(leaked), std::string::npos) << leaked << ": " << line;
  }
  auto s = Parse(line);
  EXPECT_EQ(s.fields().at("subject_id").string_value(), "[redacted]");
  EXPECT_EQ(s.fields().at("idempotency_key").string_value(), "[redacted]");
  EXPECT_EQ(s.fields().at("key_id").string_value(), "k_123");
  EXPECT_EQ(s.fields().at("state").string_value(), "QUEUED");
}

TEST(LogTest, ExtraFieldsCannotShadowStandardOnes) {
  auto sink = std::make_shared<CaptureSink>();
  Logger(sink, LogLevel::kInfo, "c")
      .Info({}, "real", {{"level", "debug"}, {"message", "fake"}});
  auto s = Parse(sink->lines().at(0));
  EXPECT_EQ(s.fields().at("level").string_value(), "info");
  EXPECT_EQ(s.fields().at("message").string_value(), "real");
  EXPECT_EQ(s.fields().at("x_message").string_value(), "fake");
}

TEST(LogTest, LinesBelowTheLevelAreDropped) {
  auto sink = std::make_shared<CaptureSink>();
  Logger log(sink, LogLevel::kWarn, "c");
  log.Debug({}, "d");
  log.Info({}, "i");
  log.Warn({}, "w");
  log.Error({}, "e");
  ASSERT_EQ(sink->lines().size(), 2u);
  EXPECT_EQ(Parse(sink->lines()[0]).fields().at("level").string_value(),
            "warn");
  EXPECT_EQ(Parse(sink->lines()[1]).fields().at("level").string_value(),
            "error");
  auto child = log.WithComponent("other");
  child.Info({}, "i");
  EXPECT_EQ(sink->lines().size(), 2u);
}

TEST(LogTest, ParsesLevelNames) {
  EXPECT_EQ(*ParseLogLevel("DEBUG"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("warning"), LogLevel::kWarn);
  auto bad = ParseLogLevel("verbose");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("debug, info, warn, error"),
            std::string::npos);
}

TEST(LogTest, ConcurrentLinesAreNeverInterleaved) {
  char tmpl[] = "/tmp/lethe-log-XXXXXX";
  const int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  std::FILE* f = fdopen(fd, "w+");
  {
    Logger log(std::make_shared<FileLogSink>(f), LogLevel::kInfo, "c");
    std::vector<std::thread> threads;
    threads.reserve(8);
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&log, t] {
        const std::string payload(300, static_cast<char>('a' + t));
        for (int i = 0; i < 200; ++i) log.Info({}, "x", {{"p", payload}});
      });
    }
    for (auto& t : threads) t.join();
  }
  std::rewind(f);
  char buf[4096];
  int lines = 0;
  while (std::fgets(buf, sizeof buf, f)) {
    ++lines;
    auto s = Parse(buf);
    const std::string p = s.fields().at("p").string_value();
    EXPECT_EQ(p, std::string(300, p[0]));
  }
  std::fclose(f);
  std::remove(tmpl);
  EXPECT_EQ(lines, 8 * 200);
}

}  // namespace
}  // namespace lethe::observability

// One real scrape: `lethe serve --metrics-listen` serves /metrics over HTTP,
// the exposition passes `promtool check metrics`, and the process's stderr
// is JSON lines that name requests but never the subject.
#include <csignal>
#include <fstream>
#include <sstream>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "tests/observability/observability_test_util.h"
#include "tests/server/test_server.h"
#include "tests/support/process.h"

namespace lethe::testing {
namespace {

using storage::Role;

constexpr char kSubject[] = "frida.private@example.net";

v1::SubmitErasureRequest Request(const std::string& subject,
                                 const std::string& key) {
  v1::SubmitErasureRequest req;
  req.set_subject_id(subject);
  req.set_legal_ground(v1::LEGAL_GROUND_GDPR_ART17_1A_NO_LONGER_NECESSARY);
  req.set_idempotency_key(key);
  return req;
}

// Runs `promtool check metrics` on `path`; returns its exit status and
// writes what it printed to `output`.
ExitStatus PromtoolCheckMetrics(const std::string& path, const std::string& dir,
                                std::string* output) {
  SubprocessOptions o;
  o.program = "/bin/sh";
  // promtool reads the exposition on stdin.
  o.args = {"-c", "exec promtool check metrics < \"$0\"", path};
  o.stdout_path = dir + "/promtool.out";
  o.stderr_path = dir + "/promtool.out";
  auto p = Subprocess::Start(o);
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return {};
  auto exit = (*p)->Wait(std::chrono::seconds(30));
  *output = (*p)->Stdout();
  return exit ? *exit : (*p)->Kill();
}

TEST(MetricsEndpointTest, ServeExposesMetricsThatPassPromtool) {
  auto ts = TestServer::Start();
  ASSERT_NE(ts, nullptr);
  const std::string dataset = CreateDatasetWithRows(
      *ts, "d", std::string(kSubject) + ",1,train,0.1,0.2,0.3,0.4\n");
  RegisterModel(*ts, "m", dataset);
  ts->StopServer();
  const std::string log = ts->temp_dir() + "/serve.log";
  auto serve = LetheServeProcess::Start(*ts, log);
  ASSERT_NE(serve, nullptr);

  auto stub = v1::ErasureService::NewStub(ts->Channel(serve->grpc_port()));
  v1::SubmitErasureResponse resp;
  auto st = stub->SubmitErasure(ts->Ctx(Role::kSubmitter).get(),
                                Request(kSubject, "k1"), &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.erasure().state(), v1::ERASURE_STATE_QUEUED);
  const std::string queued_id = resp.erasure().id();
  st = stub->SubmitErasure(ts->CtxWithToken("").get(), Request(kSubject, "k2"),
                           &resp);
  ASSERT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  auto scrape = HttpGet(serve->metrics_port(), "/metrics");
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  ASSERT_EQ(scrape->status, 200);
  const std::string& text = scrape->body;
  EXPECT_EQ(ExpositionValue(text, "grpc_server_handled_total",
                            {"grpc_method=\"SubmitErasure\"",
                             "grpc_code=\"OK\"", "grpc_type=\"unary\""}),
            1)
      << text;
  EXPECT_EQ(ExpositionValue(text, "grpc_server_handled_total",
                            {"grpc_method=\"SubmitErasure\"",
                             "grpc_code=\"Unauthenticated\""}),
            1);
  EXPECT_EQ(ExpositionValue(text, "grpc_server_handling_seconds_count",
                            {"grpc_method=\"SubmitErasure\""}),
            2);
  EXPECT_EQ(
      ExpositionValue(text, "lethe_erasure_requests", {"state=\"queued\""}), 1);
  EXPECT_EQ(ExpositionValue(text, "lethe_erasure_tasks", {"state=\"queued\""}),
            1);
  EXPECT_EQ(ExpositionValue(text, "lethe_database_up", {}), 1);
  EXPECT_EQ(text.find("frida"), std::string::npos);

  const std::string path = ts->temp_dir() + "/metrics.txt";
  std::ofstream(path) << text;
  std::string promtool;
  const ExitStatus checked =
      PromtoolCheckMetrics(path, ts->temp_dir(), &promtool);
  EXPECT_TRUE(checked.Success()) << checked.ToString() << "\n" << promtool;
  EXPECT_EQ(promtool, "") << "promtool lint findings";

  serve->process().SendSignal(SIGTERM);
  auto exit = serve->process().Wait(std::chrono::seconds(15));
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->Success()) << exit->ToString();

  // Every stderr line is one JSON object; the request is named, the subject
  // is not.
  std::istringstream lines(ReadFileOrEmpty(log));
  std::string line;
  int n = 0;
  bool submitted = false, listening = false;
  while (std::getline(lines, line)) {
    ++n;
    google::protobuf::Struct s;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &s).ok())
        << line;
    EXPECT_EQ(s.fields().count("time"), 1u) << line;
    EXPECT_EQ(s.fields().count("level"), 1u) << line;
    const std::string message = s.fields().at("message").string_value();
    listening |= message == "listening";
    if (message == "erasure submitted") {
      submitted = true;
      EXPECT_EQ(s.fields().at("request_id").string_value(), queued_id);
    }
    EXPECT_EQ(line.find("frida"), std::string::npos) << line;
    EXPECT_EQ(line.find(ts->token(Role::kSubmitter)), std::string::npos);
  }
  EXPECT_GE(n, 3);
  EXPECT_TRUE(listening);
  EXPECT_TRUE(submitted);
}

}  // namespace
}  // namespace lethe::testing

// A real Prometheus server on loopback scrapes a running `lethe serve` and
// a running `lethe-worker` (every second) and evaluates the shipped
// recording and alert rules, while erasures are submitted and carried out;
// its HTTP API must then return the expected series of both.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "cert/keys.h"
#include "tests/observability/observability_test_util.h"
#include "tests/server/test_server.h"
#include "tests/support/process.h"

namespace lethe::testing {
namespace {

using storage::Role;

struct ScrapeJob {
  std::string job;
  int port;
};

std::string PrometheusConfig(const std::vector<ScrapeJob>& jobs) {
  std::string yml = absl::StrCat(
      "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      "rule_files:\n  - ",
      LETHE_SOURCE_DIR, "/deploy/prometheus/rules/recording.yml\n  - ",
      LETHE_SOURCE_DIR,
      "/deploy/prometheus/rules/alerts.yml\nscrape_configs:\n");
  for (const auto& j : jobs) {
    absl::StrAppend(
        &yml, "  - job_name: ", j.job,
        "\n    static_configs:\n      - targets: ['127.0.0.1:", j.port, "']\n");
  }
  return yml;
}

// Sum of the values of an instant query's result vector; nullopt if the
// query failed or returned no series.
std::optional<double> Query(int port, const std::string& expr) {
  auto r = HttpGet(port, "/api/v1/query?query=" + UrlEncode(expr),
                   std::chrono::seconds(5));
  if (!r.ok() || r->status != 200) return std::nullopt;
  google::protobuf::Struct json;
  if (!google::protobuf::util::JsonStringToMessage(r->body, &json).ok()) {
    return std::nullopt;
  }
  const auto& result = json.fields()
                           .at("data")
                           .struct_value()
                           .fields()
                           .at("result")
                           .list_value();
  if (result.values_size() == 0) return std::nullopt;
  double sum = 0;
  for (const auto& series : result.values()) {
    const auto& value = series.struct_value().fields().at("value").list_value();
    sum += std::stod(value.values(1).string_value());
  }
  return sum;
}

// Polls `expr` until `want(value)` holds or `timeout` passes; returns the
// last value seen.
std::optional<double> WaitForQuery(int port, const std::string& expr,
                                   const std::function<bool(double)>& want,
                                   std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<double> last;
  while (std::chrono::steady_clock::now() < deadline) {
    last = Query(port, expr);
    if (last && want(*last)) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return last;
}

// 20 subjects with 3 training records each and 30 test records, in three
// separable classes: enough for a worker to train and unlearn a logistic
// regression in a second.
std::string SmallDataset() {
  std::string csv;
  for (int i = 0; i < 90; ++i) {
    const int cls = i % 3;
    const std::string subject =
        i < 60 ? absl::StrCat("s", i / 3) : absl::StrCat("t", i);
    absl::StrAppend(&csv, subject, ",", cls, ",", i < 60 ? "train" : "test");
    for (int f = 0; f < 4; ++f) {
      absl::StrAppend(&csv, ",",
                      f == cls ? 1.0 + 0.01 * (i % 7) : 0.05 * (i % 5));
    }
    csv += "\n";
  }
  return csv;
}

TEST(PrometheusTest, ScrapesServerAndWorkerAndAnswersForTheirSeries) {
  char tmpl[] = "/tmp/lethe-keys-XXXXXX";
  const std::string key_dir = mkdtemp(tmpl);
  auto key = cert::GenerateKeyFiles(key_dir + "/sign", cert::KeyInfo{});
  ASSERT_TRUE(key.ok()) << key.status();
  auto ts = TestServer::Start("", {key_dir + "/sign.pub"});
  ASSERT_NE(ts, nullptr);
  const std::string dataset = CreateDatasetWithRows(*ts, "d", SmallDataset());
  RegisterModel(*ts, "m", dataset);
  ts->StopServer();
  auto serve = LetheServeProcess::Start(*ts, ts->temp_dir() + "/serve.log");
  ASSERT_NE(serve, nullptr);

  const int worker_metrics = FreePort();
  SubprocessOptions w;
  w.program = LETHE_WORKER_BINARY;
  w.args = {"--database-url",   ts->database_url(),
            "--signing-keys",   key_dir + "/sign.key",
            "--threads",        "1",
            "--poll-seconds",   "0.5",
            "--metrics-listen", absl::StrCat("127.0.0.1:", worker_metrics)};
  w.stdout_path = ts->temp_dir() + "/worker.log";
  w.stderr_path = w.stdout_path;
  w.parent_death_signal = SIGKILL;
  auto worker = Subprocess::Start(w);
  ASSERT_TRUE(worker.ok()) << worker.status();
  ASSERT_TRUE(WaitForPort(worker_metrics, std::chrono::seconds(30)))
      << ReadFileOrEmpty(w.stdout_path);

  const std::string dir = ts->temp_dir() + "/prometheus";
  std::filesystem::create_directories(dir + "/data");
  std::ofstream(dir + "/prometheus.yml")
      << PrometheusConfig({{"lethe-server", serve->metrics_port()},
                           {"lethe-worker", worker_metrics}});
  const int port = FreePort();
  SubprocessOptions o;
  o.program = "prometheus";
  o.args = {"--config.file=" + dir + "/prometheus.yml",
            "--storage.tsdb.path=" + dir + "/data",
            absl::StrCat("--web.listen-address=127.0.0.1:", port),
            "--log.level=warn"};
  o.stdout_path = dir + "/prometheus.log";
  o.stderr_path = dir + "/prometheus.log";
  o.parent_death_signal = SIGKILL;
  auto prometheus = Subprocess::Start(o);
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  ASSERT_TRUE(WaitForPort(port, std::chrono::seconds(30)))
      << ReadFileOrEmpty(dir + "/prometheus.log");

  // The model trained first: a request submitted while it waits for
  // training keeps its subject out of the training set (erased stays
  // erased), and then nothing is left to unlearn and no task runs.
  for (int i = 0; i < 600 && QueryScalar(ts->database_url(),
                                         "SELECT state FROM models") != "READY";
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(QueryScalar(ts->database_url(), "SELECT state FROM models"),
            "READY")
      << ReadFileOrEmpty(w.stdout_path);
  auto stub = v1::ErasureService::NewStub(ts->Channel(serve->grpc_port()));
  for (const char* subject : {"s1", "s2"}) {
    v1::SubmitErasureRequest req;
    req.set_subject_id(subject);
    req.set_legal_ground(v1::LEGAL_GROUND_GDPR_ART17_1A_NO_LONGER_NECESSARY);
    req.set_idempotency_key(subject);
    v1::SubmitErasureResponse resp;
    auto st = stub->SubmitErasure(ts->Ctx(Role::kSubmitter).get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  const auto timeout = std::chrono::seconds(30);
  auto is = [](double want) { return [want](double v) { return v == want; }; };
  EXPECT_EQ(WaitForQuery(port, "up{job=\"lethe-server\"}", is(1), timeout), 1)
      << ReadFileOrEmpty(dir + "/prometheus.log");
  EXPECT_EQ(WaitForQuery(port,
                         "grpc_server_handled_total{job=\"lethe-server\","
                         "grpc_method=\"SubmitErasure\",grpc_code=\"OK\"}",
                         is(2), timeout),
            2);
  // Group commit: every submission was written by some batch.
  EXPECT_EQ(
      WaitForQuery(port, "lethe_intake_batch_size_sum{job=\"lethe-server\"}",
                   is(2), timeout),
      2);
  // Both requests, whatever state the worker has brought them to by now.
  EXPECT_EQ(WaitForQuery(port, "sum(lethe_erasure_requests)", is(2), timeout),
            2);
  // The shipped recording rules evaluate over the real series.
  EXPECT_EQ(
      WaitForQuery(port, "sum(lethe:erasure_requests:max)", is(2), timeout), 2);
  EXPECT_EQ(WaitForQuery(port, "lethe:database_up:min", is(1), timeout), 1);

  // The worker: up, both erasures carried out and certified, its task
  // histograms filled, and the queue drained as the server reports it.
  const auto work = std::chrono::seconds(90);
  auto at_least = [](double want) {
    return [want](double v) { return v >= want; };
  };
  EXPECT_EQ(WaitForQuery(port, "up{job=\"lethe-worker\"}", is(1), timeout), 1)
      << ReadFileOrEmpty(dir + "/prometheus.log");
  EXPECT_EQ(WaitForQuery(port, "lethe_erasure_requests{state=\"completed\"}",
                         is(2), work),
            2)
      << ReadFileOrEmpty(w.stdout_path);
  EXPECT_GE(WaitForQuery(port,
                         "lethe_worker_tasks_total{job=\"lethe-worker\","
                         "outcome=\"done\"}",
                         at_least(1), timeout)
                .value_or(0),
            1);
  EXPECT_EQ(WaitForQuery(
                port, "lethe_certificates_issued_total{job=\"lethe-worker\"}",
                is(2), timeout),
            2);
  EXPECT_GE(
      WaitForQuery(
          port, "sum(lethe_task_duration_seconds_count{job=\"lethe-worker\"})",
          at_least(1), timeout)
          .value_or(0),
      1)
      << ReadFileOrEmpty(w.stdout_path);
  EXPECT_EQ(WaitForQuery(port, "lethe_certificate_log_entries", is(2), timeout),
            2);
  EXPECT_EQ(WaitForQuery(port, "lethe_worker_busy{job=\"lethe-worker\"}", is(0),
                         timeout),
            0);

  (*prometheus)->SendSignal(SIGTERM);
  EXPECT_TRUE((*prometheus)->Wait(std::chrono::seconds(15)).has_value());
  (*worker)->SendSignal(SIGTERM);
  EXPECT_TRUE((*worker)->Wait(std::chrono::seconds(30)).has_value());
  serve->process().SendSignal(SIGTERM);
  EXPECT_TRUE(serve->process().Wait(std::chrono::seconds(15)).has_value());
  std::error_code ec;
  std::filesystem::remove_all(key_dir, ec);
}

}  // namespace
}  // namespace lethe::testing

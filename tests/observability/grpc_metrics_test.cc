// The gRPC metrics interceptor on a real server: calls of every kind are
// counted by service, method, type and code, and timed. Also the server's
// request log lines, which must name the request and never the subject.
#include "observability/grpc_metrics.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "observability/log.h"
#include "tests/observability/metrics_test_util.h"
#include "tests/server/test_server.h"

namespace lethe::testing {
namespace {

using observability::GrpcCodeName;
using storage::Role;

class CaptureSink final : public observability::LogSink {
 public:
  void Write(std::string_view line) override {
    std::lock_guard lock(mu_);
    text_.append(line);
  }
  std::string text() {
    std::lock_guard lock(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::string text_;
};

constexpr char kSubject[] = "erin.subject@example.org";

class GrpcMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ts_ = TestServer::Start();
    ASSERT_NE(ts_, nullptr);
    const std::string dataset = CreateDatasetWithRows(
        *ts_, "d", std::string(kSubject) + ",1,train,0.1,0.2,0.3,0.4\n");
    RegisterModel(*ts_, "m", dataset);
    server::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.insecure_plaintext = true;
    o.database_url = ts_->database_url();
    o.secrets_file = ts_->secrets_file();
    o.db_pool_size = 4;
    o.handler_threads = 4;
    o.key_cache_ttl = std::chrono::seconds(0);
    o.metrics_registry = registry_;
    o.logger = std::make_shared<observability::Logger>(
        sink_, observability::LogLevel::kDebug, "server");
    auto server = server::LetheServer::Start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    erasures_ = v1::ErasureService::NewStub(ts_->Channel(server_->port()));
    datasets_ = v1::DatasetService::NewStub(ts_->Channel(server_->port()));
  }

  grpc::Status Submit(const std::string& key, const std::string& token,
                      v1::SubmitErasureResponse* resp) {
    v1::SubmitErasureRequest req;
    req.set_subject_id(kSubject);
    req.set_legal_ground(v1::LEGAL_GROUND_GDPR_ART17_1A_NO_LONGER_NECESSARY);
    req.set_idempotency_key(key);
    return erasures_->SubmitErasure(ts_->CtxWithToken(token).get(), req, resp);
  }

  std::vector<prometheus::MetricFamily> Collect() {
    return registry_->Collect();
  }

  std::shared_ptr<prometheus::Registry> registry_ =
      std::make_shared<prometheus::Registry>();
  std::shared_ptr<CaptureSink> sink_ = std::make_shared<CaptureSink>();
  std::unique_ptr<TestServer> ts_;
  std::unique_ptr<server::LetheServer> server_;
  std::unique_ptr<v1::ErasureService::Stub> erasures_;
  std::unique_ptr<v1::DatasetService::Stub> datasets_;
};

const std::map<std::string, std::string> kSubmit = {
    {"grpc_service", "lethe.v1.ErasureService"},
    {"grpc_method", "SubmitErasure"},
    {"grpc_type", "unary"}};

std::map<std::string, std::string> With(std::map<std::string, std::string> m,
                                        const std::string& code) {
  m["grpc_code"] = code;
  return m;
}

TEST_F(GrpcMetricsTest, UnaryCallsAreCountedPerCodeAndTimed) {
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit("k1", ts_->token(Role::kSubmitter), &resp).ok());
  ASSERT_TRUE(Submit("k2", ts_->token(Role::kSubmitter), &resp).ok());
  const grpc::Status denied = Submit("k3", "", &resp);
  ASSERT_EQ(denied.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  const auto f = Collect();
  EXPECT_EQ(CounterValue(f, "grpc_server_started_total", kSubmit), 3);
  EXPECT_EQ(CounterValue(f, "grpc_server_handled_total", With(kSubmit, "OK")),
            2);
  EXPECT_EQ(CounterValue(f, "grpc_server_handled_total",
                         With(kSubmit, "Unauthenticated")),
            1);
  EXPECT_EQ(CounterValue(f, "grpc_server_handled_total",
                         With(kSubmit, "InvalidArgument")),
            -1);  // no such series
  EXPECT_EQ(HistogramCount(f, "grpc_server_handling_seconds", kSubmit), 3);
  auto h = FindSample(f, "grpc_server_handling_seconds", kSubmit);
  ASSERT_TRUE(h);
  EXPECT_GT(h->histogram.sample_sum, 0);
  EXPECT_LT(h->histogram.sample_sum, 60);
}

TEST_F(GrpcMetricsTest, FailingCallIsCountedWithItsCode) {
  v1::GetErasureRequest req;
  req.set_id("not-a-uuid");
  v1::Erasure e;
  const grpc::Status st =
      erasures_->GetErasure(ts_->Ctx(Role::kAuditor).get(), req, &e);
  ASSERT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const auto f = Collect();
  EXPECT_EQ(CounterValue(f, "grpc_server_handled_total",
                         {{"grpc_method", "GetErasure"},
                          {"grpc_code", "InvalidArgument"}}),
            1);
  EXPECT_EQ(CounterValue(f, "grpc_server_handled_total",
                         {{"grpc_method", "GetErasure"}, {"grpc_code", "OK"}}),
            -1);
}

TEST_F(GrpcMetricsTest, StreamingCallsAreCountedWithTheirType) {
  // Server streaming: watching a request that does not exist.
  v1::WatchErasureRequest watch;
  watch.set_id("00000000-0000-0000-0000-000000000000");
  auto ctx = ts_->Ctx(Role::kAuditor);
  auto reader = erasures_->WatchErasure(ctx.get(), watch);
  v1::ErasureEvent event;
  while (reader->Read(&event)) {
  }
  const grpc::Status watch_status = reader->Finish();
  ASSERT_FALSE(watch_status.ok());

  // Client streaming: an upload without credentials.
  auto upload_ctx = ts_->CtxWithToken("");
  v1::UploadRecordsResponse upload_resp;
  auto writer = datasets_->UploadRecords(upload_ctx.get(), &upload_resp);
  writer->WritesDone();
  const grpc::Status upload_status = writer->Finish();
  ASSERT_FALSE(upload_status.ok());

  const auto f = Collect();
  EXPECT_EQ(
      CounterValue(f, "grpc_server_handled_total",
                   {{"grpc_service", "lethe.v1.ErasureService"},
                    {"grpc_method", "WatchErasure"},
                    {"grpc_type", "server_stream"},
                    {"grpc_code", GrpcCodeName(watch_status.error_code())}}),
      1);
  EXPECT_EQ(
      CounterValue(f, "grpc_server_handled_total",
                   {{"grpc_service", "lethe.v1.DatasetService"},
                    {"grpc_method", "UploadRecords"},
                    {"grpc_type", "client_stream"},
                    {"grpc_code", GrpcCodeName(upload_status.error_code())}}),
      1);
  EXPECT_EQ(HistogramCount(f, "grpc_server_handling_seconds",
                           {{"grpc_method", "UploadRecords"},
                            {"grpc_type", "client_stream"}}),
            1);
}

TEST_F(GrpcMetricsTest, RequestStateChangesAreLoggedWithoutTheSubject) {
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(Submit("k1", ts_->token(Role::kSubmitter), &resp).ok());
  ASSERT_EQ(resp.erasure().state(), v1::ERASURE_STATE_QUEUED);
  v1::CancelErasureRequest cancel;
  cancel.set_id(resp.erasure().id());
  v1::Erasure cancelled;
  ASSERT_TRUE(
      erasures_
          ->CancelErasure(ts_->Ctx(Role::kSubmitter).get(), cancel, &cancelled)
          .ok());
  const std::string log = sink_->text();
  const std::string id = R"("request_id":")" + resp.erasure().id() + "\"";
  EXPECT_NE(log.find(id + ",\"message\":\"erasure submitted\""),
            std::string::npos)
      << log;
  EXPECT_NE(log.find(id + ",\"message\":\"erasure cancelled\""),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("erin"), std::string::npos) << log;
  EXPECT_EQ(log.find(ts_->token(Role::kSubmitter)), std::string::npos);
}

TEST(GrpcMethodNameTest, SplitsServiceAndMethod) {
  using observability::SplitGrpcMethod;
  EXPECT_EQ(SplitGrpcMethod("/lethe.v1.ErasureService/SubmitErasure"),
            std::make_pair(std::string("lethe.v1.ErasureService"),
                           std::string("SubmitErasure")));
  EXPECT_EQ(SplitGrpcMethod("").first, "unknown");
  EXPECT_EQ(SplitGrpcMethod("/a/b/c").first, "unknown");
  EXPECT_EQ(SplitGrpcMethod("noslash").first, "unknown");
  // Well formed but declared by no service here: one "unknown" series.
  EXPECT_EQ(SplitGrpcMethod("/lethe.v1.ErasureService/Nope").first, "unknown");
  EXPECT_EQ(SplitGrpcMethod("/made.up.Service7/Method7").second, "unknown");
  EXPECT_EQ(SplitGrpcMethod("/grpc.health.v1.Health/Check").second, "Check");
  EXPECT_EQ(std::string(GrpcCodeName(grpc::StatusCode::CANCELLED)), "Canceled");
  EXPECT_EQ(std::string(GrpcCodeName(grpc::StatusCode::UNAUTHENTICATED)),
            "Unauthenticated");
}

}  // namespace
}  // namespace lethe::testing

// The server as operators run it: real processes, replicas, restarts, a
// PostgreSQL that goes away, and what ends up in tables and logs.
#include <csignal>
#include <filesystem>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/subject.h"
#include "storage/hash.h"
#include "storage/postgres/stores.h"
#include "tests/server/test_server.h"
#include "tests/support/pg_instance.h"
#include "tests/support/process.h"

namespace lethe::testing {
namespace {

using storage::Role;

v1::SubmitErasureRequest Request(const std::string& subject,
                                 const std::string& key) {
  v1::SubmitErasureRequest req;
  req.set_subject_id(subject);
  req.set_legal_ground(v1::LEGAL_GROUND_GDPR_ART17_1A_NO_LONGER_NECESSARY);
  req.set_idempotency_key(key);
  return req;
}

// Polls the standard health service until it reports `want`.
bool WaitForHealth(int port,
                   grpc::health::v1::HealthCheckResponse::ServingStatus want,
                   std::chrono::seconds timeout) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(2));
    grpc::health::v1::HealthCheckResponse resp;
    if (stub->Check(&ctx, {}, &resp).ok() && resp.status() == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

TEST(ServerProcessTest, TwoReplicasOnOneDatabaseSeeTheSameRequests) {
  auto ts = TestServer::Start();
  ASSERT_NE(ts, nullptr);
  auto replica = ts->StartReplica();
  ASSERT_NE(replica, nullptr);
  auto stub_b = v1::ErasureService::NewStub(ts->Channel(replica->port()));
  v1::SubmitErasureResponse a, b;
  ASSERT_TRUE(ts->erasures()
                  .SubmitErasure(ts->Ctx(Role::kSubmitter).get(),
                                 Request("dora", "r1"), &a)
                  .ok());
  // The same key through the other replica is a replay of the same request.
  ASSERT_TRUE(stub_b
                  ->SubmitErasure(ts->Ctx(Role::kSubmitter).get(),
                                  Request("dora", "r1"), &b)
                  .ok());
  EXPECT_EQ(a.erasure().id(), b.erasure().id());
  EXPECT_TRUE(b.replayed());
  v1::GetErasureRequest get;
  get.set_id(a.erasure().id());
  v1::Erasure e;
  ASSERT_TRUE(stub_b->GetErasure(ts->Ctx(Role::kAuditor).get(), get, &e).ok());
  EXPECT_EQ(e.subject_commitment(), a.erasure().subject_commitment());
}

class LetheProcess {
 public:
  LetheProcess(const TestServer& ts, int port, const std::string& log) {
    SubprocessOptions o;
    o.program = LETHE_BINARY;
    o.args = {"serve",
              "--insecure-plaintext",
              "--listen",
              absl::StrCat("127.0.0.1:", port),
              "--database-url",
              ts.database_url(),
              "--secrets-file",
              ts.secrets_file(),
              "--shutdown-grace-seconds",
              "5"};
    o.stderr_path = log;
    o.stdout_path = log;
    o.append = true;
    o.parent_death_signal = SIGKILL;
    auto p = Subprocess::Start(o);
    EXPECT_TRUE(p.ok()) << p.status();
    if (p.ok()) process = std::move(*p);
    EXPECT_TRUE(WaitForPort(port, std::chrono::seconds(20)));
  }
  std::unique_ptr<Subprocess> process;
};

TEST(ServerProcessTest, KilledServerLosesNothingItAcknowledged) {
  auto ts = TestServer::Start();
  ASSERT_NE(ts, nullptr);
  ts->StopServer();  // only the child process serves in this test
  const int port = FreePort();
  const std::string log = ts->temp_dir() + "/server.log";
  std::vector<std::string> acknowledged;
  {
    LetheProcess server(*ts, port, log);
    auto stub = v1::ErasureService::NewStub(ts->Channel(port));
    for (int i = 0; i < 20; ++i) {
      v1::SubmitErasureResponse resp;
      auto st = stub->SubmitErasure(
          ts->Ctx(Role::kSubmitter).get(),
          Request(absl::StrCat("p", i), absl::StrCat("k", i)), &resp);
      ASSERT_TRUE(st.ok()) << st.error_message();
      acknowledged.push_back(resp.erasure().id());
    }
    server.process->SendSignal(SIGKILL);
    auto exit = server.process->Wait(std::chrono::seconds(10));
    ASSERT_TRUE(exit.has_value());
  }
  LetheProcess restarted(*ts, port, log);
  auto stub = v1::ErasureService::NewStub(ts->Channel(port));
  for (const auto& id : acknowledged) {
    v1::GetErasureRequest get;
    get.set_id(id);
    v1::Erasure e;
    EXPECT_TRUE(stub->GetErasure(ts->Ctx(Role::kAuditor).get(), get, &e).ok())
        << id;
  }
  // Retrying after the crash is a replay, never a second request.
  v1::SubmitErasureResponse resp;
  ASSERT_TRUE(stub->SubmitErasure(ts->Ctx(Role::kSubmitter).get(),
                                  Request("p0", "k0"), &resp)
                  .ok());
  EXPECT_TRUE(resp.replayed());
  EXPECT_EQ(resp.erasure().id(), acknowledged[0]);
  EXPECT_EQ(
      QueryScalar(ts->database_url(), "SELECT count(*) FROM erasure_requests"),
      "20");
  // SIGTERM drains and exits cleanly.
  restarted.process->SendSignal(SIGTERM);
  auto exit = restarted.process->Wait(std::chrono::seconds(15));
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->Success()) << exit->ToString();
}

TEST(ServerProcessTest, HealthFollowsPostgres) {
  PgInstance pg;
  ASSERT_TRUE(pg.Start().ok());
  auto ts = TestServer::Start(pg.Url());
  ASSERT_NE(ts, nullptr);
  using S = grpc::health::v1::HealthCheckResponse;
  ASSERT_TRUE(WaitForHealth(ts->port(), S::SERVING, std::chrono::seconds(10)));
  ASSERT_TRUE(pg.Stop().ok());
  EXPECT_TRUE(
      WaitForHealth(ts->port(), S::NOT_SERVING, std::chrono::seconds(15)));
  v1::SubmitErasureResponse resp;
  auto st = ts->erasures().SubmitErasure(ts->Ctx(Role::kSubmitter).get(),
                                         Request("eve", "down"), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE)
      << st.error_message();
  ASSERT_TRUE(pg.Start().ok());
  EXPECT_TRUE(WaitForHealth(ts->port(), S::SERVING, std::chrono::seconds(15)));
  // The pool reconnects: the same call now goes through.
  st = ts->erasures().SubmitErasure(ts->Ctx(Role::kSubmitter).get(),
                                    Request("eve", "down"), &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
}

// A server started before its database: it listens at once, NOT_SERVING,
// answers the API UNAVAILABLE without naming the database, logs its tries
// without the URL's password, and serves once PostgreSQL is up.
TEST(ServerProcessTest, WaitsForPostgresAtStartWithoutRevealingIt) {
  PgInstance pg;
  ASSERT_TRUE(pg.Start().ok());
  ASSERT_TRUE(pg.Stop().ok());  // its port stays reserved for the restart
  const std::string port_text = absl::StrCat(pg.port());
  char tmpl[] = "/tmp/lethe-wait-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  ASSERT_TRUE(server::CreateServerSecret(dir + "/secret").ok());
  const std::string url = absl::StrCat(
      "postgresql://lethe:pw-Xk29f@127.0.0.1:", pg.port(), "/lethe");
  const int port = FreePort();
  SubprocessOptions o;
  o.program = LETHE_BINARY;
  o.args = {"serve",
            "--insecure-plaintext",
            "--listen",
            absl::StrCat("127.0.0.1:", port),
            "--database-url",
            url,
            "--secrets-file",
            dir + "/secret",
            "--shutdown-grace-seconds",
            "1"};
  o.stdout_path = o.stderr_path = dir + "/server.log";
  o.parent_death_signal = SIGKILL;
  auto server = Subprocess::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(WaitForPort(port, std::chrono::seconds(20)));
  using S = grpc::health::v1::HealthCheckResponse;
  EXPECT_TRUE(WaitForHealth(port, S::NOT_SERVING, std::chrono::seconds(5)));
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  auto erasures = v1::ErasureService::NewStub(channel);
  auto call = [&](const std::string& token, const std::string& key) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    v1::SubmitErasureResponse resp;
    return erasures->SubmitErasure(&ctx, Request("early", key), &resp);
  };
  auto st = call("lethe_not-a-key", "before");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE)
      << st.error_message();
  EXPECT_EQ(st.error_message().find("127.0.0.1"), std::string::npos)
      << st.error_message();
  EXPECT_EQ(st.error_message().find(port_text), std::string::npos)
      << st.error_message();
  ASSERT_TRUE((*server)->Running()) << ReadFileOrEmpty(dir + "/server.log");

  ASSERT_TRUE(pg.Start().ok());
  ASSERT_TRUE(WaitForHealth(port, S::SERVING, std::chrono::seconds(30)))
      << ReadFileOrEmpty(dir + "/server.log");
  storage::Database db({pg.Url(), 1, 10});
  storage::PgApiKeyStore keys(&db);
  auto key = keys.Create({Role::kSubmitter, "test", {}}, "test");
  ASSERT_TRUE(key.ok()) << key.status();
  st = call(key->token, "after");
  EXPECT_TRUE(st.ok()) << st.error_message();

  // Down again while serving: the API's own errors do not name it either.
  ASSERT_TRUE(pg.Stop().ok());
  ASSERT_TRUE(WaitForHealth(port, S::NOT_SERVING, std::chrono::seconds(15)));
  st = call(key->token, "down");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE)
      << st.error_message();
  EXPECT_EQ(st.error_message().find("127.0.0.1"), std::string::npos)
      << st.error_message();
  EXPECT_EQ(st.error_message().find(port_text), std::string::npos)
      << st.error_message();

  (*server)->SendSignal(SIGTERM);
  auto exit = (*server)->Wait(std::chrono::seconds(15));
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->Success()) << exit->ToString();
  const std::string log = ReadFileOrEmpty(dir + "/server.log");
  EXPECT_NE(log.find("database not ready"), std::string::npos) << log;
  EXPECT_NE(log.find("database ready; serving"), std::string::npos) << log;
  EXPECT_EQ(log.find("pw-Xk29f"), std::string::npos) << log;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(ServerProcessTest, NoRawSubjectIdInAnyTableOrLogLine) {
  auto ts = TestServer::Start();
  ASSERT_NE(ts, nullptr);
  ts->StopServer();
  const int port = FreePort();
  const std::string log = ts->temp_dir() + "/server.log";
  const std::string subject = "Zq8v-unique-person@example.com";
  {
    LetheProcess server(*ts, port, log);
    TestServer& t = *ts;
    // Records of the subject, an erasure, a replay, a conflict, a cancel.
    auto datasets = v1::DatasetService::NewStub(t.Channel(port));
    v1::CreateDatasetRequest create;
    create.set_name("pii");
    create.add_feature_shape(2);
    create.set_feature_type(v1::FEATURE_TYPE_FLOAT32);
    create.set_num_classes(2);
    v1::Dataset d;
    ASSERT_TRUE(
        datasets->CreateDataset(t.Ctx(Role::kOperator).get(), create, &d).ok());
    auto upload = [&] {
      auto ctx = t.Ctx(Role::kOperator);
      v1::UploadRecordsResponse up;
      auto writer = datasets->UploadRecords(ctx.get(), &up);
      v1::UploadRecordsRequest msg;
      msg.mutable_header()->set_dataset_id(d.id());
      msg.mutable_header()->set_format(v1::UPLOAD_FORMAT_CSV);
      writer->Write(msg);
      msg.Clear();
      msg.mutable_chunk()->set_part(v1::UPLOAD_PART_CSV);
      msg.mutable_chunk()->set_data(absl::StrCat(
          "subject_id,label,split,f0,f1\n", subject, ",1,train,0.5,0.5\n"));
      writer->Write(msg);
      writer->WritesDone();
      return writer->Finish().ok();
    };
    ASSERT_TRUE(upload());
    auto erasures = v1::ErasureService::NewStub(t.Channel(port));
    v1::SubmitErasureResponse resp;
    ASSERT_TRUE(erasures
                    ->SubmitErasure(t.Ctx(Role::kSubmitter).get(),
                                    Request(subject, "pii-1"), &resp)
                    .ok());
    erasures->SubmitErasure(t.Ctx(Role::kSubmitter).get(),
                            Request(subject, "pii-1"), &resp);
    erasures->SubmitErasure(t.Ctx(Role::kSubmitter).get(),
                            Request("other", "pii-1"), &resp);
    auto bad = Request(subject, "pii-2");
    bad.add_model_ids("00000000-0000-4000-8000-000000000000");
    erasures->SubmitErasure(t.Ctx(Role::kSubmitter).get(), bad, &resp);
    // The dataset has no model, so the request deleted the records; upload
    // them again so that the dump below covers records too.
    ASSERT_TRUE(upload());
    server.process->SendSignal(SIGTERM);
    server.process->Wait(std::chrono::seconds(15));
  }
  const std::string hex = storage::ToHex(subject);
  // Every row of every table, as text.
  const std::string dump = QueryScalar(
      ts->database_url(),
      "SELECT string_agg(t, E'\\n') FROM ("
      " SELECT query_to_xml(format('SELECT * FROM %I.%I', "
      "  table_schema, table_name), true, true, '')::text AS t "
      " FROM information_schema.tables WHERE table_schema = 'public') s");
  ASSERT_FALSE(dump.empty());
  // The dump does cover the records: it holds the subject's key (bytea is
  // rendered as base64 by query_to_xml).
  auto secret = server::LoadServerSecret(ts->secrets_file());
  ASSERT_TRUE(secret.ok());
  EXPECT_NE(dump.find(absl::Base64Escape(server::SubjectKey(*secret, subject))),
            std::string::npos);
  EXPECT_EQ(dump.find(subject), std::string::npos);
  EXPECT_EQ(dump.find(hex), std::string::npos);
  const std::string server_log = ReadFileOrEmpty(log);
  ASSERT_FALSE(server_log.empty());
  EXPECT_EQ(server_log.find(subject), std::string::npos);
  EXPECT_EQ(server_log.find("Zq8v"), std::string::npos);
}

}  // namespace
}  // namespace lethe::testing

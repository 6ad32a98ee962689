// `lethe-worker` started while PostgreSQL is down: it waits (warning with
// each try, never the URL's password) instead of exiting, and does the work
// that is waiting once the database is up.
#include <csignal>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/server/test_server.h"
#include "tests/support/pg_instance.h"
#include "tests/support/process.h"

namespace lethe::testing {
namespace {

using namespace std::chrono_literals;
using storage::Role;

// A dataset of 12 records and a logistic regression that a worker must
// train: work that waits in the queue. Returns the model id.
std::string RegisterUntrainedModel(TestServer& ts) {
  v1::CreateDatasetRequest create;
  create.set_name("tiny");
  create.add_feature_shape(2);
  create.set_feature_type(v1::FEATURE_TYPE_FLOAT32);
  create.set_num_classes(2);
  v1::Dataset d;
  EXPECT_TRUE(ts.datasets()
                  .CreateDataset(ts.Ctx(Role::kOperator).get(), create, &d)
                  .ok());
  auto ctx = ts.Ctx(Role::kOperator);
  v1::UploadRecordsResponse up;
  auto writer = ts.datasets().UploadRecords(ctx.get(), &up);
  v1::UploadRecordsRequest msg;
  msg.mutable_header()->set_dataset_id(d.id());
  msg.mutable_header()->set_format(v1::UPLOAD_FORMAT_CSV);
  writer->Write(msg);
  std::string csv = "subject_id,label,split,f0,f1\n";
  for (int i = 0; i < 12; ++i) {
    const int y = i % 2;
    absl::StrAppend(&csv, "s", i / 2, ",", y, ",", i < 9 ? "train" : "test",
                    ",", y ? 1.0 : -1.0, ",", 0.1 * i, "\n");
  }
  msg.Clear();
  msg.mutable_chunk()->set_part(v1::UPLOAD_PART_CSV);
  msg.mutable_chunk()->set_data(csv);
  writer->Write(msg);
  writer->WritesDone();
  EXPECT_TRUE(writer->Finish().ok());

  auto mctx = ts.Ctx(Role::kOperator);
  v1::Model model;
  auto mw = ts.models().RegisterModel(mctx.get(), &model);
  v1::RegisterModelRequest req;
  auto* md = req.mutable_metadata();
  md->set_name("waiting-logreg");
  md->set_dataset_id(d.id());
  md->mutable_architecture()->set_kind(
      v1::Architecture::KIND_LOGISTIC_REGRESSION);
  auto* r = md->mutable_recipe();
  r->set_optimizer(v1::OPTIMIZER_SGD_MOMENTUM);
  r->set_learning_rate(0.1);
  r->set_epochs(3);
  r->set_batch_size(4);
  r->set_seed(1);
  mw->Write(req);
  mw->WritesDone();
  auto st = mw->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
  return model.id();
}

TEST(WorkerStartupTest, WaitsForPostgresThenWorks) {
  PgInstance pg;
  ASSERT_TRUE(pg.Start().ok());
  auto ts = TestServer::Start(pg.Url());
  ASSERT_NE(ts, nullptr);
  const std::string model = RegisterUntrainedModel(*ts);
  ASSERT_FALSE(model.empty());
  ts->StopServer();
  ASSERT_TRUE(pg.Stop().ok());

  const std::string log = ts->temp_dir() + "/worker.log";
  SubprocessOptions o;
  o.program = LETHE_WORKER_BINARY;
  o.args = {"--database-url",
            absl::StrCat("postgresql://lethe:pw-Qm71z@127.0.0.1:", pg.port(),
                         "/lethe"),
            "--device",
            "cpu",
            "--threads",
            "1",
            "--poll-seconds",
            "1"};
  o.stdout_path = o.stderr_path = log;
  o.parent_death_signal = SIGKILL;
  auto worker = Subprocess::Start(o);
  ASSERT_TRUE(worker.ok()) << worker.status();
  // Backoff 0.5 + 1 + 2 s: at least three tries in 4 s.
  std::this_thread::sleep_for(4s);
  ASSERT_TRUE((*worker)->Running()) << ReadFileOrEmpty(log);

  ASSERT_TRUE(pg.Start().ok());
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  std::string state;
  while (std::chrono::steady_clock::now() < deadline && state != "READY") {
    std::this_thread::sleep_for(200ms);
    try {
      state = QueryScalar(
          pg.Url(),
          absl::StrCat("SELECT state FROM models WHERE id = '", model, "'"));
    } catch (const std::exception&) {
      // PostgreSQL still starting.
    }
  }
  EXPECT_EQ(state, "READY") << ReadFileOrEmpty(log);
  EXPECT_TRUE((*worker)->Running());
  (*worker)->SendSignal(SIGTERM);
  auto exit = (*worker)->Wait(30s);
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->Success()) << exit->ToString();
  const std::string text = ReadFileOrEmpty(log);
  EXPECT_NE(text.find("database not ready; waiting"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("pw-Qm71z"), std::string::npos) << text;
}

}  // namespace
}  // namespace lethe::testing

// The worker's batch and job logic against the in-memory backend
// (storage/memory) and a scripted engine: no database, no LibTorch run.
// What reaches the engine, what gets published, how failures are counted,
// and that certificates are issued in the publishing transaction.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cert/keys.h"
#include "lethe/core/policy.h"
#include "storage/hash.h"
#include "storage/memory/backend.h"
#include "worker/engine/model_engine.h"
#include "worker/training_set.h"
#include "worker/worker.h"

namespace lethe::worker {
namespace {

using storage::Backend;

// An engine that validates anything and answers Unlearn with `next`,
// remembering what it was asked.
class ScriptedEngine final : public ModelEngine {
 public:
  std::string device_kind() const override { return "cpu"; }
  std::string device_name() const override { return "cpu (scripted)"; }
  core::Status Validate(storage::ByteStream& model,
                        const core::FeatureSpec&) const override {
    if (*storage::ReadWholeStream(model) == "not a model") {
      return core::Status(core::Code::kInvalidArgument, "not TorchScript");
    }
    return core::Status();
  }
  core::Result<EngineTrained> Train(const ModelSpec&,
                                    storage::ByteStream&) const override {
    return core::Status(core::Code::kInternal, "training is not scripted");
  }
  // Decodes the training set as an engine process would, from the stream.
  core::Result<EngineUnlearned> Unlearn(
      const ModelSpec& /*spec*/, const core::UnlearnRequest& request,
      storage::ByteStream& model, storage::ByteStream& data) const override {
    absl::StatusOr<std::string> model_bytes = storage::ReadWholeStream(model);
    if (!model_bytes.ok()) {
      return core::Status(core::Code::kInternal, "model file unreadable");
    }
    core::Result<core::Dataset> decoded =
        core::DecodeDataset(ReaderOf(data), data.size());
    if (!decoded.ok()) return decoded.status();
    std::lock_guard lock(mu_);
    calls_.push_back(Call{request.forget_subjects, *model_bytes,
                          model.InMemory().has_value(), decoded->subjects()});
    if (!next_.ok()) return next_.status();
    EngineUnlearned out;
    out.outcome = next_.value();
    if (out.outcome.report.ok) {
      out.model = ModelFileOf(std::move(out.outcome.model_bytes));
      out.outcome.model_bytes.clear();
    }
    return out;
  }

  struct Call {
    std::vector<std::string> forget;
    std::string model_bytes;
    bool model_in_memory = false;  // the worker held the model file
    std::vector<std::string> dataset_subjects;
  };
  void Answer(core::Result<core::UnlearnOutcome> next) {
    std::lock_guard lock(mu_);
    next_ = std::move(next);
  }
  std::vector<Call> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  mutable std::vector<Call> calls_;
  core::Result<core::UnlearnOutcome> next_ =
      core::Status(core::Code::kInternal, "no answer scripted");
};

core::UnlearnOutcome Unlearned(const std::string& bytes,
                               const std::string& method) {
  core::UnlearnOutcome out;
  out.report.ok = true;
  out.report.method = method;
  out.report.guarantee = method == "retrain" ? "exact" : "approximate";
  out.report.before.ta = 0.9;
  out.report.after.ta = 0.89;
  out.report.after.mia_auc = 0.5;
  out.report.after.ua = 0.12;  // forget accuracy 0.88 <= test 0.89 + 5 points
  const core::Policy policy;   // the gate the engine applied
  out.report.gate = {policy.max_mia_auc, policy.max_test_acc_drop,
                     policy.max_forget_acc_excess};
  out.report.forget_records = 4;
  core::Attempt rejected;
  rejected.method = "finetune";
  rejected.outcome = "failed_gate";
  rejected.failure = core::AttemptFailure::kMiaAuc;
  out.report.attempts.push_back(rejected);
  core::Attempt accepted;
  accepted.method = method;
  accepted.outcome = "accepted";
  out.report.attempts.push_back(accepted);
  out.model_bytes = bytes;
  out.model_sha256 = storage::ToHex(storage::Sha256(bytes));
  return out;
}

std::string Subject(int n) {
  return storage::Sha256("subject-" + std::to_string(n));
}

class WorkerUnitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = std::shared_ptr<Backend>(storage::NewMemoryBackend());
    engine_ = std::make_shared<ScriptedEngine>();
    storage::DatasetRow row;
    row.name = "people";
    row.feature_shape = {2};
    row.feature_type = "uint8";
    row.num_classes = 2;
    auto dataset = backend_->datasets().Create(row, "admin");
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    std::vector<storage::RecordRow> records;
    for (int s : {1, 2, 3}) {
      for (bool test : {false, false, true}) {
        records.push_back(
            {Subject(s), s % 2, test, std::string("\x01\x02", 2)});
      }
    }
    ASSERT_TRUE(
        backend_->datasets().AddRecords(dataset->id, records, "admin").ok());
    storage::RegisterParams p;
    p.model.name = "m";
    p.model.dataset_id = dataset->id;
    p.model.architecture_json = R"({"kind": "KIND_TORCHSCRIPT"})";
    p.model.recipe_json = "{}";
    p.model.policy_json = R"({"maxAttempts": 2})";
    storage::StringByteStream artifact("version 1");
    p.artifact = &artifact;
    p.artifact_sha256 = storage::Sha256("version 1");
    auto model = backend_->models().Register(p, "admin");
    ASSERT_TRUE(model.ok()) << model.status();
    model_id_ = model->id;
  }

  // Runs a worker until nothing is left to do.
  void RunWorker(std::shared_ptr<const cert::KeyRing> keys = nullptr) {
    WorkerOptions o;
    o.exit_when_idle = true;
    o.poll = std::chrono::milliseconds(10);
    o.retry_base_seconds = 0;
    o.retry_max_seconds = 0;
    o.signing_keys = std::move(keys);
    o.logger =
        std::make_shared<observability::Logger>(observability::Logger::Stderr(
            observability::LogLevel::kError, "worker"));
    Worker worker(o, backend_, engine_);
    ASSERT_TRUE(worker.Run().ok());
  }

  std::string Submit(int subject) {
    storage::SubmitParams p;
    p.client_key_id = "client";
    p.idempotency_key = "key-" + std::to_string(subject);
    p.body_sha256 = storage::Sha256(p.idempotency_key);
    p.subject_key = Subject(subject);
    p.subject_commitment = storage::Sha256("commitment");
    p.legal_ground = "GDPR_ART17_1B_CONSENT_WITHDRAWN";
    auto r = backend_->erasures().Submit(p);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->erasure.id : "";
  }

  storage::ErasureRow Erasure(const std::string& id) {
    auto row = backend_->erasures().Get(id);
    EXPECT_TRUE(row.ok()) << row.status();
    return row.ok() ? *row : storage::ErasureRow{};
  }

  std::shared_ptr<Backend> backend_;
  std::shared_ptr<ScriptedEngine> engine_;
  std::string model_id_;
};

// The training set goes to the engine through a scratch file, not the
// worker's memory: every record the model may train on, in id order, as
// core decodes it, with the header's counts; rewinding reads it again;
// nothing is left in the scratch directory (issue 19).
TEST_F(WorkerUnitTest, TrainingSetsAreSpooledToScratchAndReadBackWhole) {
  const std::string scratch = ::testing::TempDir() + "/lethe-scratch-test";
  std::filesystem::remove_all(scratch);
  std::filesystem::create_directories(scratch);
  auto queue = backend_->NewWorkQueue(storage::QueueOptions{.owner = "t"});
  auto model = backend_->models().Get(model_id_);
  ASSERT_TRUE(model.ok()) << model.status();
  auto dataset = backend_->datasets().Get(model->dataset_id);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  auto set = TrainingSet::Load(*queue, *model, *dataset, scratch);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ((*set)->train_records(), 6);
  EXPECT_EQ((*set)->test_records(), 3);
  EXPECT_TRUE(std::filesystem::is_empty(scratch));  // unlinked at creation
  for (int pass = 0; pass < 2; ++pass) {
    ASSERT_TRUE((*set)->Rewind().ok());
    core::Result<core::Dataset> d =
        core::DecodeDataset(ReaderOf(**set), (*set)->size());
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->size(), 9);
    EXPECT_EQ(d->subjects().size(), 3u);
    EXPECT_EQ(
        std::count(d->splits().begin(), d->splits().end(), core::Split::kTest),
        3);
    EXPECT_TRUE(std::is_sorted(d->record_ids().begin(), d->record_ids().end()));
  }
  // A scratch directory that is not there is a clear error.
  auto missing =
      TrainingSet::Load(*queue, *model, *dataset, scratch + "/missing");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(missing.status().message().find("spool file"), std::string::npos);
  std::filesystem::remove_all(scratch);
}

TEST_F(WorkerUnitTest, ValidatesThenPublishesAndCertifiesABatch) {
  RunWorker();  // validation job only
  ASSERT_EQ(backend_->models().Get(model_id_)->state, "READY");
  const std::string a = Submit(1);
  const std::string b = Submit(2);
  engine_->Answer(Unlearned("version 2", "finetune"));
  auto keys = std::make_shared<const cert::KeyRing>(
      std::vector<cert::PrivateKey>{cert::PrivateKey::Generate()});
  RunWorker(keys);

  // One run for both requests, on version 1, without the subjects' data
  // hidden from it (they are the forget set), and nothing else forgotten.
  const auto calls = engine_->calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].model_bytes, "version 1");
  // The model file came from the store to a scratch file, not memory.
  EXPECT_FALSE(calls[0].model_in_memory);
  EXPECT_EQ(
      std::set<std::string>(calls[0].forget.begin(), calls[0].forget.end()),
      (std::set<std::string>{Subject(1), Subject(2)}));
  EXPECT_EQ(calls[0].dataset_subjects.size(), 3u);

  for (const std::string& id : {a, b}) {
    const storage::ErasureRow row = Erasure(id);
    EXPECT_EQ(row.state, "COMPLETED") << row.state_reason;
    ASSERT_EQ(row.tasks.size(), 1u);
    EXPECT_EQ(row.tasks[0].result_version, 2);
    auto certificate = backend_->certificates().Get(id);
    EXPECT_TRUE(certificate.ok()) << certificate.status();
  }
  auto v2 = backend_->models().GetVersion(model_id_, 0);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->version, 2);
  EXPECT_EQ(v2->produced_by, "finetune");
  // The subjects' records are gone; subject 3's remain.
  auto dataset =
      backend_->datasets().Get(backend_->models().Get(model_id_)->dataset_id);
  EXPECT_EQ(dataset->subjects, 1);
}

TEST_F(WorkerUnitTest, EveryMethodFailingIsRetriedThenFailsTheRequest) {
  RunWorker();
  const std::string id = Submit(1);
  core::UnlearnOutcome failed;
  failed.report.ok = false;
  failed.report.failure = "retrain over its time budget";
  engine_->Answer(failed);
  RunWorker();
  EXPECT_EQ(engine_->calls().size(), 2u);  // policy maxAttempts = 2
  const storage::ErasureRow row = Erasure(id);
  EXPECT_EQ(row.state, "FAILED");
  EXPECT_NE(row.state_reason.find("every method of the policy failed"),
            std::string::npos)
      << row.state_reason;
  EXPECT_EQ(backend_->models().GetVersion(model_id_, 0)->version, 1);
}

TEST_F(WorkerUnitTest, SubjectWithoutTrainingRecordsCompletesWithoutAVersion) {
  RunWorker();
  const std::string id = Submit(1);
  engine_->Answer(core::Status(core::Code::kNotFound, "no training record"));
  RunWorker();
  const storage::ErasureRow row = Erasure(id);
  EXPECT_EQ(row.state, "COMPLETED");
  ASSERT_EQ(row.tasks.size(), 1u);
  EXPECT_EQ(row.tasks[0].result_version, 1);
  EXPECT_EQ(backend_->models().GetVersion(model_id_, 0)->version, 1);
}

TEST_F(WorkerUnitTest, InvalidModelSkipsItsTasks) {
  storage::RegisterParams p;
  p.model.name = "broken";
  p.model.dataset_id = backend_->models().Get(model_id_)->dataset_id;
  p.model.architecture_json = R"({"kind": "KIND_TORCHSCRIPT"})";
  p.model.recipe_json = "{}";
  p.model.policy_json = "{}";
  storage::StringByteStream artifact("not a model");
  p.artifact = &artifact;
  p.artifact_sha256 = storage::Sha256("not a model");
  auto broken = backend_->models().Register(p, "admin");
  ASSERT_TRUE(broken.ok()) << broken.status();
  const std::string id = Submit(1);  // tasks on both models
  engine_->Answer(Unlearned("version 2", "retrain"));
  RunWorker();
  EXPECT_EQ(backend_->models().Get(broken->id)->state, "INVALID");
  const storage::ErasureRow row = Erasure(id);
  EXPECT_EQ(row.state, "COMPLETED");
  std::set<std::string> states;
  for (const auto& t : row.tasks) states.insert(t.state);
  EXPECT_EQ(states, (std::set<std::string>{"DONE", "SKIPPED"}));
}

}  // namespace
}  // namespace lethe::worker

// Workers end to end: a real server, real PostgreSQL, real `lethe-worker`
// processes running the real engine on small models.
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cert/keys.h"
#include "storage/hash.h"
#include "storage/postgres/artifact_store.h"
#include "storage/postgres/database.h"
#include "storage/postgres/work_queue.h"
#include "tests/server/test_server.h"
#include "tests/support/pg_instance.h"
#include "tests/support/process.h"

namespace lethe::testing {
namespace {

using storage::Role;
using namespace std::chrono_literals;

constexpr int kFeatures = 10;
constexpr int kSubjects = 30;
constexpr int kPerSubject = 12;

// Three well separated classes in features 0..7; subject s owns kPerSubject
// train records of class s % 3. "target-*" subjects' records also light up
// features 8..9 and carry a wrong label: poisoned data that a model learns,
// and that a model trained without it labels by its class instead.
std::string SyntheticCsv(int targets) {
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0, 0.6f);
  std::string csv;
  auto row = [&](const std::string& subject, int cls, int label,
                 const char* split) {
    absl::StrAppend(&csv, subject, ",", label, ",", split);
    const bool poisoned = label != cls;
    for (int f = 0; f < kFeatures; ++f) {
      const float center = f >= 8           ? (poisoned ? 3.0f : 0.0f)
                           : (f % 3 == cls) ? 2.0f
                                            : 0.0f;
      absl::StrAppend(&csv, ",", center + noise(rng));
    }
    csv += "\n";
  };
  for (int s = 0; s < kSubjects; ++s) {
    for (int i = 0; i < kPerSubject; ++i)
      row(absl::StrCat("subject-", s), s % 3, s % 3, "train");
  }
  for (int t = 0; t < targets; ++t) {
    for (int i = 0; i < kPerSubject; ++i)
      row(absl::StrCat("target-", t), t % 3, (t + 1) % 3, "train");
  }
  for (int i = 0; i < 150; ++i) row("holdout", i % 3, i % 3, "test");
  row("test-only", 0, 0, "test");
  return csv;
}

std::string Scalar(TestServer& ts, const std::string& sql) {
  return QueryScalar(ts.database_url(), sql);
}

bool WaitUntil(TestServer& ts, const std::string& sql,
               std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      if (Scalar(ts, sql) == "t") return true;
    } catch (const std::exception&) {
      // PostgreSQL restarting.
    }
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

class WorkerTest : public ::testing::Test {
 public:
  void SetUp() override { Start(""); }

  void Start(const std::string& url) {
    char tmpl[] = "/tmp/lethe-keys-XXXXXX";
    key_dir_ = mkdtemp(tmpl);
    auto key = cert::GenerateKeyFiles(key_dir_ + "/sign", cert::KeyInfo{});
    ASSERT_TRUE(key.ok()) << key.status();
    ts_ = TestServer::Start(url, {key_dir_ + "/sign.pub"});
    ASSERT_NE(ts_, nullptr);
    v1::CreateDatasetRequest create;
    create.set_name("synthetic");
    create.add_feature_shape(kFeatures);
    create.set_feature_type(v1::FEATURE_TYPE_FLOAT32);
    create.set_num_classes(3);
    v1::Dataset d;
    ASSERT_TRUE(ts_->datasets()
                    .CreateDataset(ts_->Ctx(Role::kOperator).get(), create, &d)
                    .ok());
    dataset_ = d.id();
    auto ctx = ts_->Ctx(Role::kOperator);
    v1::UploadRecordsResponse resp;
    auto writer = ts_->datasets().UploadRecords(ctx.get(), &resp);
    v1::UploadRecordsRequest msg;
    msg.mutable_header()->set_dataset_id(dataset_);
    msg.mutable_header()->set_format(v1::UPLOAD_FORMAT_CSV);
    writer->Write(msg);
    std::string header = "subject_id,label,split";
    for (int f = 0; f < kFeatures; ++f) absl::StrAppend(&header, ",f", f);
    msg.Clear();
    msg.mutable_chunk()->set_part(v1::UPLOAD_PART_CSV);
    msg.mutable_chunk()->set_data(header + "\n" + SyntheticCsv(4));
    writer->Write(msg);
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
  }

  // Registers an MLP that a worker trains (60 epochs: it memorises).
  std::string RegisterMlp(
      const std::string& name,
      const std::function<void(v1::UnlearningPolicy&)>& policy = {},
      const std::string& artifact = "",
      const std::function<void(v1::ModelMetadata&)>& metadata = {}) {
    auto ctx = ts_->Ctx(Role::kOperator);
    v1::Model model;
    auto writer = ts_->models().RegisterModel(ctx.get(), &model);
    v1::RegisterModelRequest msg;
    auto* md = msg.mutable_metadata();
    md->set_name(name);
    md->set_dataset_id(dataset_);
    if (artifact.empty()) {
      md->mutable_architecture()->set_kind(v1::Architecture::KIND_MLP);
      md->mutable_architecture()->add_hidden_units(32);
    } else {
      md->mutable_architecture()->set_kind(v1::Architecture::KIND_TORCHSCRIPT);
    }
    auto* r = md->mutable_recipe();
    r->set_optimizer(v1::OPTIMIZER_SGD_MOMENTUM);
    r->set_learning_rate(0.05);
    r->set_epochs(60);
    r->set_batch_size(32);
    r->set_seed(3);
    r->set_schedule(v1::LEARNING_RATE_SCHEDULE_LINEAR_DECAY);
    auto* p = md->mutable_policy();
    p->add_methods(v1::UNLEARNING_METHOD_RETRAIN);
    p->set_max_attempts(3);
    if (policy) policy(*p);
    if (metadata) metadata(*md);
    writer->Write(msg);
    if (!artifact.empty()) {
      msg.Clear();
      msg.set_artifact_chunk(artifact);
      writer->Write(msg);
    }
    writer->WritesDone();
    auto st = writer->Finish();
    EXPECT_TRUE(st.ok()) << st.error_message();
    return model.id();
  }

  // The model's lifecycle state (models.state), e.g. "READY".
  std::string ModelState(const std::string& model) {
    return Scalar(*ts_, absl::StrCat("SELECT state FROM models WHERE id = '",
                                     model, "'"));
  }

  // `expr` evaluated on a model version's row of model_versions.
  std::string VersionField(const std::string& model, int version,
                           const std::string& expr) {
    return Scalar(*ts_, absl::StrCat("SELECT ", expr,
                                     " FROM model_versions WHERE model_id = '",
                                     model, "' AND version = ", version));
  }

  std::string Submit(const std::string& subject, const std::string& key) {
    v1::SubmitErasureRequest req;
    req.set_subject_id(subject);
    req.set_legal_ground(v1::LEGAL_GROUND_GDPR_ART17_1B_CONSENT_WITHDRAWN);
    req.set_idempotency_key(key);
    v1::SubmitErasureResponse resp;
    auto st = ts_->erasures().SubmitErasure(ts_->Ctx(Role::kSubmitter).get(),
                                            req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.erasure().id();
  }

  v1::Erasure Get(const std::string& id) {
    v1::GetErasureRequest req;
    req.set_id(id);
    v1::Erasure e;
    EXPECT_TRUE(ts_->erasures()
                    .GetErasure(ts_->Ctx(Role::kAuditor).get(), req, &e)
                    .ok());
    return e;
  }

  std::unique_ptr<Subprocess> StartWorker(std::vector<std::string> extra = {},
                                          const std::string& fault = "") {
    SubprocessOptions o;
    o.program = LETHE_WORKER_BINARY;
    o.args = {"--database-url",
              ts_->database_url(),
              "--lease-seconds",
              "3",
              "--signing-keys",
              key_dir_ + "/sign.key",
              "--retry-base-seconds",
              "0.2",
              "--poll-seconds",
              "0.5",
              "--threads",
              "1"};
    o.args.insert(o.args.end(), extra.begin(), extra.end());
    if (!fault.empty()) o.env.emplace_back("LETHE_FAULT_POINT", fault);
    o.stderr_path = ts_->temp_dir() + "/worker.log";
    o.stdout_path = o.stderr_path;
    o.append = true;
    o.parent_death_signal = SIGKILL;
    auto p = Subprocess::Start(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  // Runs a worker until no work is left.
  void Drain(std::chrono::seconds timeout = 120s) {
    auto w = StartWorker({"--exit-when-idle"});
    auto exit = w->Wait(timeout);
    ASSERT_TRUE(exit.has_value())
        << "worker did not finish; log:\n"
        << ReadFileOrEmpty(ts_->temp_dir() + "/worker.log");
    EXPECT_TRUE(exit->Success()) << exit->ToString();
  }

  std::string Versions(const std::string& model) {
    return Scalar(
        *ts_,
        absl::StrCat("SELECT count(*) FROM model_versions WHERE model_id = '",
                     model, "'"));
  }

  ~WorkerTest() override {
    std::error_code ec;
    if (!key_dir_.empty()) std::filesystem::remove_all(key_dir_, ec);
  }

  // Runs lethectl against the test server as an auditor; returns its exit
  // code and puts its stdout in `out`.
  int Lethectl(const std::vector<std::string>& args, std::string* out) {
    SubprocessOptions o;
    o.program = LETHECTL_BINARY;
    o.args = args;
    o.env = {{"LETHE_ADDR", absl::StrCat("127.0.0.1:", ts_->port())},
             {"LETHE_API_KEY", ts_->token(Role::kAuditor)}};
    o.stdout_path = ts_->temp_dir() + "/lethectl.out";
    o.stderr_path = o.stdout_path;
    auto p = Subprocess::Start(o);
    if (!p.ok()) return -1;
    auto exit = (*p)->Wait(60s);
    *out = ReadFileOrEmpty(o.stdout_path);
    return exit.has_value() && exit->exited ? exit->code : -1;
  }

  std::unique_ptr<TestServer> ts_;
  std::string dataset_;
  std::string key_dir_;
};

TEST_F(WorkerTest,
       ErasureCompletesWithNewVersionRowsGoneAndForgetAccuracyDropped) {
  const std::string model = RegisterMlp("mlp");
  Drain();  // trains version 1
  ASSERT_EQ(ModelState(model), "READY");
  ASSERT_EQ(Versions(model), "1");
  const std::string a = Submit("target-0", "a");
  const std::string b = Submit("target-1", "b");
  Drain();
  for (const auto& id : {a, b}) {
    v1::Erasure e = Get(id);
    EXPECT_EQ(e.state(), v1::ERASURE_STATE_COMPLETED) << e.state_reason();
    ASSERT_EQ(e.tasks_size(), 1);
    EXPECT_EQ(e.tasks(0).state(), v1::TASK_STATE_DONE);
    EXPECT_EQ(e.tasks(0).result_version(), 2) << "both absorbed by one batch";
  }
  EXPECT_EQ(Versions(model), "2");
  // The subjects' rows are gone, nobody else's.
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM records"),
            absl::StrCat(kSubjects * kPerSubject + 2 * kPerSubject + 151));
  EXPECT_EQ(Scalar(*ts_,
                   "SELECT count(*) FROM erasure_requests WHERE subject_key IS "
                   "NOT NULL"),
            "0");
  // The forget set's (poisoned) labels are no longer reproduced.
  const double ua_before =
      std::stod(VersionField(model, 2, "report->'before'->>'ua'"));
  const double ua_after =
      std::stod(VersionField(model, 2, "report->'after'->>'ua'"));
  EXPECT_GT(ua_after, ua_before + 0.3)
      << "before " << ua_before << " after " << ua_after;
  EXPECT_EQ(VersionField(model, 2, "produced_by"), "retrain");
  // lethe trained version 1 with the recipe: its retrain is exact.
  EXPECT_EQ(VersionField(model, 2, "report->>'guarantee'"), "exact");
  // Version 1 held the erased data: deleted at once (grace 0), artifact too.
  EXPECT_EQ(
      Scalar(*ts_,
             absl::StrCat("SELECT deleted_at IS NOT NULL FROM model_versions "
                          "WHERE model_id = '",
                          model, "' AND version = 1")),
      "t");
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM artifacts"), "1");
  v1::ListModelVersionsRequest lv;
  lv.set_model_id(model);
  v1::ListModelVersionsResponse versions;
  ASSERT_TRUE(
      ts_->models()
          .ListModelVersions(ts_->Ctx(Role::kAuditor).get(), lv, &versions)
          .ok());
  ASSERT_EQ(versions.versions_size(), 2);
  EXPECT_EQ(versions.versions(0).erasure_ids_size(), 2);
  // One certificate per request, issued with the completion, that an
  // auditor verifies offline against the log.
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM certificates"), "2");
  const std::string bundle = ts_->temp_dir() + "/a.bundle.json";
  std::string out;
  ASSERT_EQ(Lethectl({"certificate", "get", a, "--bundle", bundle}, &out), 0)
      << out;
  ASSERT_EQ(Lethectl({"verify", bundle, "--key", key_dir_ + "/sign.pub"}, &out),
            0)
      << out;
  EXPECT_NE(out.find("retrain"), std::string::npos) << out;
  EXPECT_NE(out.find("guarantee: exact"), std::string::npos) << out;
  EXPECT_NE(out.find(a), std::string::npos) << out;
}

// Issue 15: the same weights registered from outside are retrained with
// lethe's recipe, not the one that produced them: the version and its
// certificate say `retrained`, not `exact`.
TEST_F(WorkerTest, RetrainOfARegisteredModelCertifiesRetrainedNotExact) {
  const std::string trained = RegisterMlp("trained");
  Drain();
  ASSERT_EQ(ModelState(trained), "READY");
  v1::DownloadModelVersionRequest dl;
  dl.set_model_id(trained);
  auto ctx = ts_->Ctx(Role::kAuditor);
  auto reader = ts_->models().DownloadModelVersion(ctx.get(), dl);
  v1::DownloadModelVersionResponse msg;
  std::string artifact;
  while (reader->Read(&msg)) artifact += msg.chunk();
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_FALSE(artifact.empty());
  const std::string model = RegisterMlp("uploaded", {}, artifact);
  Drain();
  ASSERT_EQ(ModelState(model), "READY");
  EXPECT_EQ(VersionField(model, 1, "produced_by"), "registered");
  const std::string id = Submit("target-2", "u");
  Drain();
  ASSERT_EQ(Get(id).state(), v1::ERASURE_STATE_COMPLETED);
  EXPECT_EQ(VersionField(trained, 2, "report->>'guarantee'"), "exact");
  EXPECT_EQ(VersionField(model, 2, "produced_by"), "retrain");
  EXPECT_EQ(VersionField(model, 2, "report->>'guarantee'"), "retrained");
  const std::string bundle = ts_->temp_dir() + "/u.bundle.json";
  std::string out;
  ASSERT_EQ(Lethectl({"certificate", "get", id, "--bundle", bundle}, &out), 0)
      << out;
  ASSERT_EQ(Lethectl({"verify", bundle, "--key", key_dir_ + "/sign.pub"}, &out),
            0)
      << out;
  EXPECT_NE(out.find("guarantee: retrained"), std::string::npos) << out;
  EXPECT_NE(out.find("guarantee: exact"), std::string::npos) << out;
}

TEST_F(WorkerTest, CertifiedHeadErasesByNewtonStepWithCertificate) {
  // rf_logreg trained certified by the worker; an erasure is one Newton
  // step on the cached Hessians, published as a certified version.
  const std::string model = RegisterMlp(
      "rf",
      [](v1::UnlearningPolicy& p) {
        p.clear_methods();
        p.add_methods(v1::UNLEARNING_METHOD_NEWTON);
        p.add_methods(v1::UNLEARNING_METHOD_RETRAIN);
        p.set_max_mia_auc(1.0);
        p.set_max_test_accuracy_drop(100);
        p.set_max_forget_accuracy_excess(100);
        auto* n = p.mutable_newton();
        // A few hundred synthetic records: the step's bound needs a loose
        // budget (the benchmark's 60,000 images fit epsilon 1).
        n->set_epsilon(1e4);
        n->set_delta(1e-4);
        n->set_l2(1e-2);
        n->set_sigma(10);
      },
      "",
      [](v1::ModelMetadata& m) {
        m.mutable_architecture()->set_kind(
            v1::Architecture::KIND_RF_LOGISTIC_REGRESSION);
        m.mutable_architecture()->clear_hidden_units();
        m.mutable_architecture()->add_hidden_units(64);
      });
  Drain();
  ASSERT_EQ(ModelState(model), "READY");
  const std::string id = Submit("target-0", "rf");
  Drain();
  v1::Erasure e = Get(id);
  ASSERT_EQ(e.state(), v1::ERASURE_STATE_COMPLETED) << e.state_reason();
  auto version2 = [&](const std::string& expr) {
    return VersionField(model, 2, expr);
  };
  EXPECT_EQ(version2("produced_by"), "newton");
  EXPECT_EQ(version2("report->>'guarantee'"), "certified");
  EXPECT_GT(std::stod(version2("report->>'newton_bound'")), 0);
  // The state that travels with the version carries the updated Hessians.
  EXPECT_GT(
      std::stol(version2("(SELECT a.size_bytes FROM artifacts a "
                         "WHERE a.sha256 = model_versions.state_sha256)")),
      4 * 65 * 65 * 8);  // 3 classes' and the Gram matrix's 65 x 65
  // Only the subject's records are gone.
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM records"),
            absl::StrCat(kSubjects * kPerSubject + 3 * kPerSubject + 151));
  const std::string bundle = ts_->temp_dir() + "/rf.bundle.json";
  std::string out;
  ASSERT_EQ(Lethectl({"certificate", "get", id, "--bundle", bundle}, &out), 0)
      << out;
  ASSERT_EQ(Lethectl({"verify", bundle, "--key", key_dir_ + "/sign.pub"}, &out),
            0)
      << out;
  EXPECT_NE(out.find("newton"), std::string::npos) << out;
  EXPECT_NE(out.find("certified"), std::string::npos) << out;
}

TEST_F(WorkerTest, PolicyCostRuleSkipsFinetuneForRetrain) {
  // finetune's 5 epochs are 5/60 = 0.083 of this model's retrain, over the
  // policy's 0.05: the worker's engine skips it for the exact method.
  const std::string model = RegisterMlp("costly", [](v1::UnlearningPolicy& p) {
    p.clear_methods();
    p.add_methods(v1::UNLEARNING_METHOD_FINETUNE);
    p.add_methods(v1::UNLEARNING_METHOD_RETRAIN);
    p.set_max_cost_fraction(0.05);
    p.set_adaptive_budget_fraction(-1);  // off: the rule is for single runs
  });
  Drain();
  const std::string id = Submit("target-0", "cost");
  Drain();
  ASSERT_EQ(Get(id).state(), v1::ERASURE_STATE_COMPLETED);
  auto version2 = [&](const std::string& expr) {
    return VersionField(model, 2, expr);
  };
  EXPECT_EQ(version2("produced_by"), "retrain");
  EXPECT_EQ(version2("report->'attempts'->0->>'outcome'"), "skipped");
  EXPECT_NE(version2("report->'attempts'->0->>'reason'")
                .find("estimated cost 0.0833"),
            std::string::npos)
      << version2("report->'attempts'->0->>'reason'");
}

TEST_F(WorkerTest, SubjectWithOnlyTestRecordsCompletesWithoutNewVersion) {
  const std::string model = RegisterMlp("mlp");
  Drain();
  const std::string id = Submit("test-only", "t");
  Drain();
  EXPECT_EQ(Get(id).state(), v1::ERASURE_STATE_COMPLETED);
  EXPECT_EQ(Versions(model), "1");
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM records WHERE split = 'test'"),
            "150");
  // Certified as "none": the model is unchanged, one record removed.
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM certificates"), "1");
  EXPECT_EQ(
      Scalar(*ts_,
             "SELECT method || ' ' || records_removed FROM erasure_tasks"),
      "none 1");
}

TEST_F(WorkerTest, CancelledBeforeClaimNeverProducesAVersion) {
  const std::string model = RegisterMlp("mlp");
  Drain();
  const std::string id = Submit("target-0", "c");
  v1::CancelErasureRequest cancel;
  cancel.set_id(id);
  v1::Erasure e;
  ASSERT_TRUE(ts_->erasures()
                  .CancelErasure(ts_->Ctx(Role::kSubmitter).get(), cancel, &e)
                  .ok());
  Drain();
  EXPECT_EQ(Get(id).state(), v1::ERASURE_STATE_CANCELLED);
  EXPECT_EQ(Versions(model), "1");
}

TEST_F(WorkerTest, CpuWorkerClaimsOnlyModelsItsDeviceMayRun) {
  const std::string on_cuda =
      RegisterMlp("needs-cuda", [](v1::UnlearningPolicy& p) {
        p.set_device(v1::DEVICE_REQUIREMENT_CUDA);
      });
  const std::string on_cpu =
      RegisterMlp("needs-cpu", [](v1::UnlearningPolicy& p) {
        p.set_device(v1::DEVICE_REQUIREMENT_CPU);
      });
  Drain();  // --device auto: CPU here
  EXPECT_EQ(ModelState(on_cpu), "READY");
  // Training a CUDA-only model waits for a CUDA worker; nothing touched it.
  EXPECT_EQ(ModelState(on_cuda), "TRAINING");
  EXPECT_EQ(
      Scalar(*ts_, absl::StrCat("SELECT job_attempts FROM models WHERE id = '",
                                on_cuda, "'")),
      "0");
  // Once the CUDA model is ready (as if a CUDA worker had trained it), its
  // erasure tasks still wait for a CUDA worker while the CPU model's finish.
  Scalar(*ts_, absl::StrCat("UPDATE models SET state = 'READY' WHERE id = '",
                            on_cuda, "' RETURNING 1"));
  const std::string id = Submit("target-0", "d");
  Drain();
  EXPECT_EQ(
      Scalar(*ts_,
             absl::StrCat("SELECT state FROM erasure_tasks WHERE model_id = '",
                          on_cpu, "'")),
      "DONE");
  EXPECT_EQ(
      Scalar(*ts_,
             absl::StrCat("SELECT state || ' ' || attempts FROM erasure_tasks "
                          "WHERE model_id = '",
                          on_cuda, "'")),
      "QUEUED 0");
  EXPECT_NE(Get(id).state(), v1::ERASURE_STATE_COMPLETED);
  EXPECT_EQ(Versions(on_cpu), "2");
  // The subject's records stay until the CUDA model has unlearned them too.
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM records WHERE split = 'train'"),
            std::to_string((kSubjects + 4) * kPerSubject));
}

// The SISA shard of a subject key given in hex, as documented in
// core/sisa.h: the first 8 bytes of SHA-256("lethe-sisa-v2:" + seed + ":" +
// key), big-endian, modulo shards.
int ShardOf(const std::string& seed, const std::string& key_hex, int shards) {
  std::string key = absl::StrCat("lethe-sisa-v2:", seed, ":");
  for (size_t i = 0; i + 1 < key_hex.size(); i += 2) {
    key.push_back(
        static_cast<char>(std::stoi(key_hex.substr(i, 2), nullptr, 16)));
  }
  const std::string digest = storage::Sha256(key);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | static_cast<uint8_t>(digest[i]);
  return static_cast<int>(v % static_cast<uint64_t>(shards));
}

TEST_F(WorkerTest, SisaModelIsBatchedPerShard) {
  constexpr int kShards = 4;
  const std::string model = RegisterMlp("sisa", [](v1::UnlearningPolicy& p) {
    p.clear_methods();
    p.add_methods(v1::UNLEARNING_METHOD_SISA);
    p.mutable_sisa()->set_shards(kShards);
    p.mutable_sisa()->set_slices(2);
    p.set_batch_size(1);  // one request picks the shard; its shard-mates join
  });
  Drain();
  ASSERT_EQ(ModelState(model), "READY");
  const std::string seed =
      Scalar(*ts_, absl::StrCat("SELECT coalesce(recipe->>'seed', '0') FROM "
                                "models WHERE id = '",
                                model, "'"));
  std::map<std::string, int> shard_of;  // erasure id -> shard of its subject
  std::set<int> shards;
  for (int s = 0; s < 8; ++s) {
    const std::string id =
        Submit(absl::StrCat("subject-", s), absl::StrCat("sisa-", s));
    const int shard = ShardOf(
        seed,
        Scalar(*ts_, absl::StrCat("SELECT encode(subject_key, 'hex') FROM "
                                  "erasure_requests WHERE id = '",
                                  id, "'")),
        kShards);
    shard_of[id] = shard;
    shards.insert(shard);
  }
  Drain();
  // One engine run per shard touched, not per request (batch size 1) nor
  // one for all: each run absorbed every request of one shard and retrained
  // that shard alone.
  EXPECT_EQ(Versions(model), std::to_string(1 + shards.size()));
  std::set<std::string> absorbed;
  for (int v = 2; v <= 1 + static_cast<int>(shards.size()); ++v) {
    const std::string ids = Scalar(
        *ts_, absl::StrCat(
                  "SELECT string_agg(erasure_id::text, ',') FROM erasure_tasks "
                  "WHERE model_id = '",
                  model, "' AND result_version = ", v));
    const std::string retrained = Scalar(
        *ts_, absl::StrCat(
                  "SELECT report->>'sisa_retrained_shards' FROM model_versions "
                  "WHERE model_id = '",
                  model, "' AND version = ", v));
    std::set<int> run_shards;
    for (absl::string_view id : absl::StrSplit(ids, ',')) {
      absorbed.insert(std::string(id));
      run_shards.insert(shard_of.at(std::string(id)));
    }
    ASSERT_EQ(run_shards.size(), 1u) << "version " << v << " absorbed " << ids;
    EXPECT_EQ(retrained, absl::StrCat("[", *run_shards.begin(), "]"))
        << "version " << v;
  }
  EXPECT_EQ(absorbed.size(), shard_of.size());
  for (const auto& [id, shard] : shard_of) {
    EXPECT_EQ(Get(id).state(), v1::ERASURE_STATE_COMPLETED) << id;
  }
}

TEST_F(WorkerTest, TwoWorkersRacingProcessEachTaskOnce) {
  const std::string m1 = RegisterMlp("mlp-a");
  const std::string m2 = RegisterMlp(
      "mlp-b", [](v1::UnlearningPolicy& p) { p.set_batch_size(1); });
  Drain();
  std::vector<std::string> ids;
  ids.reserve(4);
  for (int i = 0; i < 4; ++i)
    ids.push_back(Submit(absl::StrCat("target-", i), absl::StrCat("r", i)));
  auto w1 = StartWorker({"--exit-when-idle"});
  auto w2 = StartWorker({"--exit-when-idle"});
  ASSERT_TRUE(w1->Wait(180s).has_value());
  ASSERT_TRUE(w2->Wait(180s).has_value());
  for (const auto& id : ids) {
    EXPECT_EQ(Get(id).state(), v1::ERASURE_STATE_COMPLETED)
        << Scalar(*ts_,
                  "SELECT string_agg(model_id || ' ' || state || ' ' || "
                  "attempts || ' ' "
                  "|| last_error, E'\\n') FROM erasure_tasks")
        << "\n"
        << ReadFileOrEmpty(ts_->temp_dir() + "/worker.log");
  }
  // Each task done once: one 'task.done' audit entry per task, and every
  // version has a distinct parent.
  EXPECT_EQ(
      Scalar(*ts_, "SELECT count(*) FROM erasure_tasks WHERE state = 'DONE'"),
      "8");
  EXPECT_EQ(Scalar(*ts_,
                   "SELECT max(n) FROM (SELECT count(*) AS n FROM audit_log "
                   "WHERE action "
                   "= 'task.done' GROUP BY erasure_id, model_id) s"),
            "1");
  EXPECT_EQ(
      Scalar(*ts_, "SELECT count(*) FROM audit_log WHERE action = 'task.done'"),
      "8");
  EXPECT_EQ(Scalar(*ts_,
                   "SELECT bool_and(n = 1) FROM (SELECT count(*) AS n FROM "
                   "model_versions "
                   "GROUP BY model_id, parent_version) s"),
            "t");
  // batch_size 1 on m2: one version per request.
  EXPECT_EQ(Versions(m2), "5");
  EXPECT_GE(std::stoi(Versions(m1)), 2);
}

class WorkerCrashTest : public WorkerTest,
                        public ::testing::WithParamInterface<const char*> {};

TEST_P(WorkerCrashTest, KilledWorkerTaskCompletesExactlyOnceOnRestart) {
  const std::string model = RegisterMlp("mlp");
  Drain();
  const std::string id = Submit("target-0", "crash");
  auto crashing = StartWorker({}, GetParam());
  auto exit = crashing->Wait(120s);
  ASSERT_TRUE(exit.has_value());
  EXPECT_FALSE(exit->Success()) << "the fault point was not reached";
  const bool committed = std::string(GetParam()) == "after_commit";
  EXPECT_EQ(Versions(model), committed ? "2" : "1");
  EXPECT_EQ(Get(id).state(), committed ? v1::ERASURE_STATE_COMPLETED
                                       : v1::ERASURE_STATE_RUNNING);
  Drain();  // waits out the 3 s lease, rescues, redoes
  v1::Erasure e = Get(id);
  EXPECT_EQ(e.state(), v1::ERASURE_STATE_COMPLETED);
  EXPECT_EQ(Versions(model), "2");
  EXPECT_EQ(e.tasks(0).attempts(), committed ? 1 : 2);
  EXPECT_EQ(
      Scalar(*ts_, "SELECT count(*) FROM audit_log WHERE action = 'task.done'"),
      "1");
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM certificates"), "1");
  EXPECT_EQ(
      Scalar(*ts_, "SELECT count(*) FROM records WHERE subject_key IS NULL"),
      "0");
}

INSTANTIATE_TEST_SUITE_P(FaultPoints, WorkerCrashTest,
                         ::testing::Values("training", "after_artifact",
                                           "before_commit", "after_commit"));

TEST_F(WorkerTest, PoisonModelRetriesWithBackoffThenDead) {
  // A TorchScript model whose outputs are NaN: every method diverges.
  const std::string dir = ts_->temp_dir();
  const std::string script = dir + "/nan_model.py";
  std::ofstream(script) << "import torch, sys\n"
                           "class M(torch.nn.Module):\n"
                           "    def __init__(self):\n"
                           "        super().__init__()\n"
                           "        self.lin = torch.nn.Linear(10, 3)\n"
                           "    def forward(self, x):\n"
                           "        return self.lin(x) * float('nan')\n"
                           "torch.jit.script(M()).save(sys.argv[1])\n";
  ASSERT_EQ(
      std::system(absl::StrCat("/usr/bin/python3 ", script, " ", dir, "/nan.pt")
                      .c_str()),
      0);
  const std::string model = RegisterMlp(
      "nan",
      [](v1::UnlearningPolicy& p) {
        p.clear_methods();
        p.add_methods(v1::UNLEARNING_METHOD_FINETUNE);
        p.add_methods(v1::UNLEARNING_METHOD_RETRAIN);
      },
      ReadFileOrEmpty(dir + "/nan.pt"));
  Drain();
  ASSERT_EQ(ModelState(model), "READY");
  const std::string id = Submit("target-0", "nan");
  Drain();
  v1::Erasure e = Get(id);
  EXPECT_EQ(e.state(), v1::ERASURE_STATE_FAILED);
  ASSERT_EQ(e.tasks_size(), 1);
  EXPECT_EQ(e.tasks(0).state(), v1::TASK_STATE_DEAD);
  EXPECT_EQ(e.tasks(0).attempts(), 3);
  EXPECT_NE(e.tasks(0).last_error().find("every method"), std::string::npos)
      << e.tasks(0).last_error();
  EXPECT_NE(e.state_reason().find("failed"), std::string::npos);
  EXPECT_EQ(Versions(model), "1");
  EXPECT_EQ(
      Scalar(*ts_,
             "SELECT count(*) FROM audit_log WHERE action = 'task.retry'"),
      "2");
  // Records stay: the model still holds the subject.
  EXPECT_EQ(
      Scalar(*ts_,
             "SELECT count(*) > 0 FROM records r JOIN datasets d ON true"),
      "t");
}

TEST_F(WorkerTest, GracePeriodKeepsOldVersionThenDeletesIt) {
  const std::string model = RegisterMlp("mlp", [](v1::UnlearningPolicy& p) {
    p.set_old_version_grace_seconds(3);
  });
  Drain();
  const std::string id = Submit("target-0", "g");
  auto worker = StartWorker({"--lease-seconds", "4"});
  ASSERT_TRUE(
      WaitUntil(*ts_,
                absl::StrCat("SELECT state = 'COMPLETED' FROM erasure_requests "
                             "WHERE id = '",
                             id, "'"),
                120s));
  EXPECT_EQ(
      Scalar(*ts_, absl::StrCat(
                       "SELECT deleted_at IS NULL AND delete_after IS NOT NULL "
                       "FROM model_versions WHERE model_id = '",
                       model, "' AND version = 1")),
      "t");
  EXPECT_TRUE(WaitUntil(
      *ts_,
      absl::StrCat("SELECT deleted_at IS NOT NULL FROM model_versions "
                   "WHERE model_id = '",
                   model, "' AND version = 1"),
      30s));
  EXPECT_EQ(Scalar(*ts_,
                   "SELECT count(*) FROM audit_log WHERE action = "
                   "'model.version_deleted'"),
            "1");
  worker->SendSignal(SIGTERM);
  auto exit = worker->Wait(30s);
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->Success()) << exit->ToString();
}

// What one version of `model` trained on, from its report:
// "forget+retain", e.g. "12+384".
std::string TrainedOn(TestServer& ts, const std::string& model, int version) {
  return Scalar(
      ts, absl::StrCat("SELECT (report->>'forget_records') || '+' || "
                       "(report->>'retain_records') FROM model_versions WHERE "
                       "model_id = '",
                       model, "' AND version = ", version));
}

// The subject keys that WorkQueue::ForEachTrainingRecord gives `model`.
std::set<std::string> LoaderSubjects(TestServer& ts, const std::string& model) {
  storage::Database db({ts.database_url(), 1, 10});
  auto artifacts = storage::NewPostgresArtifactStore();
  storage::PgWorkQueue queue(&db, artifacts.get(), {});
  std::set<std::string> keys;
  auto st = queue.ForEachTrainingRecord(model, [&](storage::RecordData& r) {
    keys.insert(storage::ToHex(r.subject_key));
    return absl::OkStatus();
  });
  EXPECT_TRUE(st.ok()) << st;
  return keys;
}

// Issue 14: model A absorbs X, then Y, while model B (a long batch window)
// has absorbed neither, so X's records are still there when A runs for Y.
// A's run for Y must not train on X; B's run takes both.
TEST_F(WorkerTest, TwoModelsNeverTrainOnASubjectAfterAbsorbingIt) {
  const std::string a = RegisterMlp("a");
  const std::string b = RegisterMlp("b", [](v1::UnlearningPolicy& p) {
    p.set_batch_size(100);
    p.set_batch_window_seconds(25);
  });
  Drain();
  const int train = (kSubjects + 4) * kPerSubject;
  const std::string x = Submit("target-0", "x");
  auto worker = StartWorker();
  auto task_done = [&](const std::string& id, const std::string& model) {
    return WaitUntil(
        *ts_,
        absl::StrCat("SELECT state = 'DONE' FROM erasure_tasks WHERE "
                     "erasure_id = '",
                     id, "' AND model_id = '", model, "'"),
        60s);
  };
  ASSERT_TRUE(task_done(x, a))
      << ReadFileOrEmpty(ts_->temp_dir() + "/worker.log");
  const std::string x_key =
      Scalar(*ts_, absl::StrCat("SELECT encode(subject_key, 'hex') FROM "
                                "erasure_requests WHERE id = '",
                                x, "'"));
  const std::string y = Submit("target-1", "y");
  ASSERT_TRUE(task_done(y, a));
  // B has absorbed nothing yet: X's records are still there (B needs
  // them), yet A's loader leaves them out and B's does not.
  ASSERT_EQ(
      Scalar(*ts_, absl::StrCat(
                       "SELECT state FROM erasure_tasks WHERE erasure_id = '",
                       x, "' AND model_id = '", b, "'")),
      "QUEUED")
      << "B's batch window passed too soon: the test is void";
  EXPECT_EQ(Scalar(*ts_, absl::StrCat(
                             "SELECT count(*) FROM records WHERE subject_key = "
                             "decode('",
                             x_key, "', 'hex')")),
            absl::StrCat(kPerSubject));
  EXPECT_EQ(LoaderSubjects(*ts_, a).count(x_key), 0u);
  EXPECT_EQ(LoaderSubjects(*ts_, b).count(x_key), 1u);
  EXPECT_EQ(TrainedOn(*ts_, a, 2),
            absl::StrCat(kPerSubject, "+", train - kPerSubject));
  EXPECT_EQ(TrainedOn(*ts_, a, 3),
            absl::StrCat(kPerSubject, "+", train - 2 * kPerSubject))
      << "A's version 3 trained on X, which version 2 had absorbed";
  for (const auto& id : {x, y}) {
    ASSERT_TRUE(WaitUntil(*ts_,
                          absl::StrCat("SELECT state = 'COMPLETED' FROM "
                                       "erasure_requests WHERE id = '",
                                       id, "'"),
                          90s));
  }
  EXPECT_EQ(TrainedOn(*ts_, b, 2),
            absl::StrCat(2 * kPerSubject, "+", train - 2 * kPerSubject));
  // Records and exclusions are gone together; every certificate names a
  // version that later versions descend from without the subject.
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM records WHERE split = 'train'"),
            absl::StrCat(train - 2 * kPerSubject));
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM model_exclusions"), "0");
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM certificates"), "2");
  EXPECT_TRUE(LoaderSubjects(*ts_, a) == LoaderSubjects(*ts_, b));
  worker->SendSignal(SIGTERM);
  worker->Wait(30s);
}

// A model created while a request runs never trains on its subject, though
// the request has no task on it.
TEST_F(WorkerTest, ModelTrainedDuringAnErasureExcludesTheSubject) {
  const std::string a = RegisterMlp("a", [](v1::UnlearningPolicy& p) {
    p.set_batch_size(100);
    p.set_batch_window_seconds(3600);
  });
  Drain();
  const std::string x = Submit("target-0", "x");
  const std::string c = RegisterMlp("c");
  auto w = StartWorker();
  ASSERT_TRUE(WaitUntil(
      *ts_,
      absl::StrCat("SELECT state = 'READY' FROM models WHERE id = '", c, "'"),
      90s));
  const int train = (kSubjects + 4) * kPerSubject;
  EXPECT_EQ(Scalar(*ts_, absl::StrCat("SELECT report->>'train_records' FROM "
                                      "model_versions WHERE model_id = '",
                                      c, "'")),
            absl::StrCat(train - kPerSubject));
  EXPECT_EQ(
      Scalar(*ts_, absl::StrCat(
                       "SELECT count(*) FROM erasure_tasks WHERE model_id = '",
                       c, "'")),
      "0");
  EXPECT_EQ(
      Scalar(*ts_,
             absl::StrCat(
                 "SELECT count(*) FROM model_exclusions WHERE model_id = '", c,
                 "' AND version IS NULL")),
      "1");
  EXPECT_EQ(LoaderSubjects(*ts_, c).size() + 1, LoaderSubjects(*ts_, a).size());
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM records WHERE split = 'train'"),
            absl::StrCat(train))
      << "X's records wait for A";
  EXPECT_EQ(Get(x).state(), v1::ERASURE_STATE_QUEUED);
  w->SendSignal(SIGTERM);
  w->Wait(30s);
}

// Issue 14: an INVALID model neither blocks a request nor keeps the
// subject: its task is SKIPPED, its versions deleted, the request completes
// for the other model and the records go.
TEST_F(WorkerTest, InvalidModelIsSkippedAndItsVersionsDeleted) {
  const std::string good = RegisterMlp("good");
  const std::string bad = RegisterMlp("bad", {}, "not a TorchScript archive");
  Drain();
  ASSERT_EQ(ModelState(bad), "INVALID");
  const std::string id = Submit("target-0", "i");
  Drain();
  v1::Erasure e = Get(id);
  EXPECT_EQ(e.state(), v1::ERASURE_STATE_COMPLETED) << e.state_reason();
  ASSERT_EQ(e.tasks_size(), 2);
  for (const auto& t : e.tasks()) {
    if (t.model_id() == bad) {
      EXPECT_EQ(t.state(), v1::TASK_STATE_SKIPPED);
      EXPECT_NE(t.last_error().find("INVALID"), std::string::npos)
          << t.last_error();
    } else {
      EXPECT_EQ(t.state(), v1::TASK_STATE_DONE);
    }
  }
  EXPECT_NE(e.state_reason().find("versions were deleted"), std::string::npos)
      << e.state_reason();
  EXPECT_EQ(
      Scalar(*ts_, absl::StrCat("SELECT bool_and(deleted_at IS NOT NULL) FROM "
                                "model_versions WHERE model_id = '",
                                bad, "'")),
      "t");
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM records WHERE split = 'train'"),
            absl::StrCat((kSubjects + 3) * kPerSubject));
  // The certificate covers the model that unlearned.
  EXPECT_EQ(
      Scalar(*ts_, "SELECT array_to_string(model_ids, ',') FROM certificates"),
      good);
}

// Issue 14: records in a dataset that no model uses go with the request.
TEST_F(WorkerTest, RecordsInADatasetWithoutModelsAreDeletedAtSubmission) {
  const std::string id = Submit("target-2", "n");
  v1::Erasure e = Get(id);
  EXPECT_EQ(e.state(), v1::ERASURE_STATE_NOTHING_TO_ERASE);
  EXPECT_NE(e.state_reason().find(absl::StrCat(kPerSubject, " records")),
            std::string::npos)
      << e.state_reason();
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM records WHERE split = 'train'"),
            absl::StrCat((kSubjects + 3) * kPerSubject));
  // A replay deletes nothing more and answers the same.
  EXPECT_EQ(Submit("target-2", "n"), id);
  EXPECT_EQ(Scalar(*ts_, "SELECT count(*) FROM certificates"), "0");
}

// Issue 14: a worker killed mid-run costs a lost lease, not a failure; with
// max_attempts 1 the next worker still completes the request.
TEST_F(WorkerTest, KilledWorkerDoesNotUseUpAttempts) {
  const std::string model = RegisterMlp(
      "mlp", [](v1::UnlearningPolicy& p) { p.set_max_attempts(1); });
  Drain();
  const std::string id = Submit("target-0", "k");
  auto doomed = StartWorker({}, "training");
  auto killed = doomed->Wait(60s);
  ASSERT_TRUE(killed.has_value());
  Drain();
  v1::Erasure e = Get(id);
  EXPECT_EQ(e.state(), v1::ERASURE_STATE_COMPLETED) << e.state_reason();
  EXPECT_EQ(
      Scalar(*ts_,
             "SELECT failures || ' ' || lost_leases || ' ' || attempts FROM "
             "erasure_tasks"),
      "0 1 2");
}

// A model job whose worker is killed mid-training is not a failure: with
// max_attempts 1 the model still trains (an INVALID model would have its
// versions deleted by the next erasure, so this matters).
TEST_F(WorkerTest, KilledWorkerDoesNotMakeAModelInvalid) {
  const std::string model = RegisterMlp(
      "slow", [](v1::UnlearningPolicy& p) { p.set_max_attempts(1); }, "",
      [](v1::ModelMetadata& md) { md.mutable_recipe()->set_epochs(400); });
  auto doomed = StartWorker();
  ASSERT_TRUE(
      WaitUntil(*ts_,
                absl::StrCat("SELECT lease_owner IS NOT NULL FROM models "
                             "WHERE id = '",
                             model, "'"),
                30s));
  doomed->SendSignal(SIGKILL);
  doomed->Wait(30s);
  Drain();
  EXPECT_EQ(ModelState(model), "READY");
  EXPECT_EQ(
      Scalar(*ts_,
             absl::StrCat("SELECT job_failures || ' ' || job_lost_leases FROM "
                          "models WHERE id = '",
                          model, "'")),
      "0 1");
}

TEST(WorkerPostgresRestartTest, TaskInFlightIsRetriedNotLost) {
  PgInstance pg;
  ASSERT_TRUE(pg.Start().ok());
  struct Fixture : WorkerTest {
    void TestBody() override {}
  } f;
  f.Start(pg.Url());
  const std::string model = f.RegisterMlp("mlp");
  f.Drain();
  const std::string id = f.Submit("target-0", "pg");
  auto worker = f.StartWorker();
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(pg.Restart().ok());
  EXPECT_TRUE(
      WaitUntil(*f.ts_,
                absl::StrCat("SELECT state = 'COMPLETED' FROM erasure_requests "
                             "WHERE id = '",
                             id, "'"),
                120s))
      << ReadFileOrEmpty(f.ts_->temp_dir() + "/worker.log");
  EXPECT_EQ(f.Versions(model), "2");
  worker->SendSignal(SIGTERM);
  worker->Wait(30s);
}

}  // namespace
}  // namespace lethe::testing

#include "tests/memory/backend_contract.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "absl/strings/ascii.h"
#include "cert/dsse.h"
#include "cert/keys.h"
#include "cert/merkle.h"
#include "cert/statement.h"
#include "storage/hash.h"

namespace lethe::storage::testing {
namespace {

using std::chrono::seconds;

TaskRow TaskOf(const ErasureRow& row, const std::string& model_id) {
  for (const auto& t : row.tasks) {
    if (t.model_id == model_id) return t;
  }
  ADD_FAILURE() << "no task on model " << model_id;
  return {};
}

// What worker/certify.cc states for an exact method.
cert::CompletionRecord RecordOf(const CompletedRequest& req) {
  cert::CompletionRecord r;
  r.request_id = req.erasure_id;
  r.legal_ground = req.legal_ground;
  r.legal_reference = req.legal_reference;
  r.subject_commitment = req.subject_commitment;
  r.submitted_us = req.submitted_us;
  r.completed_us = req.completed_us;
  for (const CompletedTask& t : req.tasks) {
    cert::ModelOutcome m;
    m.model_id = t.model_id;
    m.model_name = t.model_name;
    m.version_before = t.parent_version;
    m.digest_before = t.digest_before;
    m.version_after = t.result_version;
    m.digest_after = t.digest_after;
    m.records_removed = t.records_removed;
    m.method = t.method;
    m.guarantee = cert::Guarantee::kExact;
    r.models.push_back(std::move(m));
  }
  return r;
}

CompletionHook IssueWith(const cert::KeyRing& keys) {
  return [&keys](CertificateScope& scope,
                 const std::vector<std::string>& ids) -> absl::Status {
    for (const auto& id : ids) {
      auto completed = scope.ReadCompleted(id);
      if (!completed.ok()) return completed.status();
      auto issued = scope.Issue(RecordOf(*completed), keys);
      if (!issued.ok()) return issued.status();
    }
    return absl::OkStatus();
  };
}

// A PublishRequest with the artifact bytes it points to.
struct OwnedVersion {
  OwnedVersion(int64_t parent, std::string artifact)
      : stream(std::move(artifact)) {
    req.parent_version = parent;
    req.artifact = &stream;
    req.artifact_sha256 = Sha256(*stream.InMemory());
    req.produced_by = "retrain";
  }
  operator const PublishRequest&() const { return req; }

  OwnedByteStream stream;
  PublishRequest req;
};

OwnedVersion NewVersion(int64_t parent, std::string artifact) {
  return OwnedVersion(parent, std::move(artifact));
}

// FinishModelJob with a trained model's bytes.
absl::Status FinishTraining(WorkQueue& queue, const ModelJob& job,
                            const std::string& artifact) {
  StringByteStream stream(artifact);
  return queue.FinishModelJob(job, &stream, Sha256(artifact), "", "retrain",
                              "");
}

// The newest version's artifact, read as a worker reads it.
std::string LatestArtifact(WorkQueue& queue, const std::string& model_id) {
  auto latest = queue.Latest(model_id);
  if (!latest.ok()) return latest.status().ToString();
  auto reader = queue.OpenArtifact(latest->artifact_sha256);
  if (!reader.ok()) return reader.status().ToString();
  auto bytes = ReadWholeArtifact(**reader);
  return bytes.ok() ? *bytes : bytes.status().ToString();
}

}  // namespace

void BackendContractTest::SetUp() {
  backend_ = GetParam().make();
  ASSERT_NE(backend_, nullptr);
  ASSERT_TRUE(backend_->Prepare(true).ok());
  queue_ = backend_->NewWorkQueue(Options("worker-1"));
}

QueueOptions BackendContractTest::Options(const std::string& owner) const {
  QueueOptions o;
  o.owner = owner;
  o.lease = seconds(60);
  o.retry_base_seconds = 0;  // a failed task is due again at once
  return o;
}

std::string BackendContractTest::Subject(int n) {
  return Sha256("subject-" + std::to_string(n));
}

std::string BackendContractTest::MakeDataset(const std::string& name,
                                             const std::vector<int>& subjects) {
  DatasetRow row;
  row.name = name;
  row.feature_shape = {2};
  row.feature_type = "uint8";
  row.num_classes = 2;
  auto created = backend_->datasets().Create(row, "admin");
  EXPECT_TRUE(created.ok()) << created.status();
  std::vector<RecordRow> records;
  for (int s : subjects) {
    for (bool test : {false, false, true}) {
      records.push_back(RecordRow{Subject(s), s % 2, test, "\x01\x02"});
    }
  }
  auto added = backend_->datasets().AddRecords(created->id, records, "admin");
  EXPECT_TRUE(added.ok()) << added.status();
  return created->id;
}

std::string BackendContractTest::MakeReadyModel(
    const std::string& name, const std::string& dataset_id,
    const std::string& policy_json) {
  RegisterParams p;
  p.model.name = name;
  p.model.dataset_id = dataset_id;
  p.model.architecture_json = "{}";
  p.model.recipe_json = "{}";
  p.model.policy_json = policy_json;
  const std::string weights = "weights of " + name;
  StringByteStream artifact(weights);
  p.artifact = &artifact;
  p.artifact_sha256 = Sha256(weights);
  auto model = backend_->models().Register(p, "admin");
  EXPECT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->state, "PENDING_VALIDATION");
  auto job = queue_->ClaimModelJob();
  EXPECT_TRUE(job.ok() && job->has_value()) << job.status();
  EXPECT_EQ((*job)->model.id, model->id);
  EXPECT_FALSE((*job)->training);
  auto reader = queue_->OpenArtifact((*job)->artifact_sha256);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (reader.ok()) {
    EXPECT_EQ(*ReadWholeArtifact(**reader), weights);
  }
  EXPECT_TRUE(queue_->FinishModelJob(**job, nullptr, "", "", "", "").ok());
  return model->id;
}

SubmitParams BackendContractTest::Params(
    int subject, const std::string& key,
    const std::vector<std::string>& scope) {
  SubmitParams p;
  p.client_key_id = "client-1";
  p.idempotency_key = key;
  p.subject_key = Subject(subject);
  p.subject_commitment = Sha256("commitment-" + std::to_string(subject));
  p.legal_ground = "GDPR_ART17_1B_CONSENT_WITHDRAWN";
  p.scope_model_ids = scope;
  std::string body = p.subject_key + p.legal_ground;
  for (const auto& id : scope) body += id;
  p.body_sha256 = Sha256(body);
  return p;
}

std::set<std::string> BackendContractTest::TrainingSubjects(
    const std::string& model_id) {
  std::set<std::string> out;
  auto st = queue_->ForEachTrainingRecord(model_id, [&](RecordData& r) {
    out.insert(r.subject_key);
    return absl::OkStatus();
  });
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

// ---- Intake ----

// An upload's new subjects are those no earlier record of the dataset has,
// whatever other datasets hold (the count is the upload's own, not a
// recount of the dataset).
TEST_P(BackendContractTest, AnUploadCountsOnlyItsNewSubjects) {
  const std::string first = MakeDataset("first", {1, 2});
  const std::string other = MakeDataset("other", {3});
  auto upload = [&](const std::string& dataset, std::vector<int> subjects) {
    std::vector<RecordRow> records;
    for (int s : subjects)
      records.push_back(RecordRow{Subject(s), 0, false, "\x01\x02"});
    return backend_->datasets().AddRecords(dataset, records, "admin");
  };
  // 2 is known here, 3 only in the other dataset, 4 twice in this upload.
  auto added = upload(first, {2, 3, 4, 4});
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->records_added, 4);
  EXPECT_EQ(added->new_subjects, 2);
  auto d = backend_->datasets().Get(first);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->subjects, 4);
  EXPECT_EQ(d->train_records, 4 + 4);
  EXPECT_EQ(d->test_records, 2);
  added = upload(other, {3, 5});
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->new_subjects, 1);
}

TEST_P(BackendContractTest, SubmitIsIdempotentOnClientAndKey) {
  const std::string model = MakeReadyModel("m", MakeDataset("d", {1, 2}));
  auto first = backend_->erasures().Submit(Params(1, "key-1"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->replayed);
  EXPECT_EQ(first->erasure.state, "QUEUED");
  ASSERT_EQ(first->erasure.tasks.size(), 1u);
  EXPECT_EQ(first->erasure.tasks[0].model_id, model);
  EXPECT_EQ(first->erasure.tasks[0].state, "QUEUED");

  auto again = backend_->erasures().Submit(Params(1, "key-1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->erasure.id, first->erasure.id);

  auto other_body = backend_->erasures().Submit(Params(2, "key-1"));
  EXPECT_EQ(other_body.status().code(), absl::StatusCode::kAlreadyExists);
  SubmitParams other_client = Params(2, "key-1");
  other_client.client_key_id = "client-2";
  auto separate = backend_->erasures().Submit(other_client);
  ASSERT_TRUE(separate.ok()) << separate.status();
  EXPECT_NE(separate->erasure.id, first->erasure.id);
}

// A request stored with the unkeyed body hash (before 2026-12-06) is still
// replayed by a retry that carries it as legacy_body_sha256; a retry whose
// neither hash matches is another request.
TEST_P(BackendContractTest, ReplayMatchesALegacyBodyHash) {
  MakeReadyModel("m", MakeDataset("d", {1}));
  SubmitParams old = Params(1, "key-legacy");
  auto first = backend_->erasures().Submit(old);
  ASSERT_TRUE(first.ok()) << first.status();
  SubmitParams retry = old;
  retry.legacy_body_sha256 = old.body_sha256;
  retry.body_sha256 = Sha256("keyed form");
  auto again = backend_->erasures().Submit(retry);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->erasure.id, first->erasure.id);
  retry.legacy_body_sha256 = Sha256("another body");
  EXPECT_EQ(backend_->erasures().Submit(retry).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_P(BackendContractTest, SubmitAsyncCallsBackOnce) {
  MakeReadyModel("m", MakeDataset("d", {1}));
  int calls = 0;
  absl::StatusOr<SubmitResult> got = absl::UnknownError("not called");
  std::mutex mu;
  std::condition_variable cv;
  backend_->erasures().SubmitAsync(Params(1, "k"), [&](auto result) {
    std::lock_guard lock(mu);
    ++calls;
    got = std::move(result);
    cv.notify_one();
  });
  std::unique_lock lock(mu);
  cv.wait_for(lock, seconds(10), [&] { return calls > 0; });
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->erasure.state, "QUEUED");
}

TEST_P(BackendContractTest, SubmitNamingAnUnknownModelIsNotFound) {
  MakeReadyModel("m", MakeDataset("d", {1}));
  const std::string unknown = "00000000-0000-4000-8000-000000000001";
  auto r = backend_->erasures().Submit(Params(1, "k", {unknown}));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(unknown), std::string::npos);
  auto page = backend_->erasures().List({}, Page{});
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->rows.empty());
}

TEST_P(BackendContractTest, SubjectNoModelHoldsIsNothingToErase) {
  MakeReadyModel("m", MakeDataset("with-model", {1}));
  const std::string orphan = MakeDataset("no-model", {7});
  auto r = backend_->erasures().Submit(Params(7, "k"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->erasure.state, "NOTHING_TO_ERASE");
  EXPECT_TRUE(r->erasure.tasks.empty());
  EXPECT_NE(r->erasure.completed_us, 0);
  // Its records in the dataset no model uses went at intake.
  EXPECT_NE(r->erasure.state_reason.find("3 records"), std::string::npos)
      << r->erasure.state_reason;
  auto d = backend_->datasets().Get(orphan);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->subjects, 0);
  EXPECT_EQ(d->train_records + d->test_records, 0);
}

// Issue 17, item 5: a submitter key scoped to datasets reaches only their
// models; a model of another dataset looks as absent as a made-up one.
TEST_P(BackendContractTest, KeyScopedToDatasetsReachesOnlyTheirModels) {
  const std::string a = MakeDataset("a", {1});
  const std::string b = MakeDataset("b", {1});
  const std::string c = MakeDataset("c-no-model", {1});
  const std::string d = MakeDataset("d-no-model", {1});
  const std::string model_a = MakeReadyModel("model-a", a);
  const std::string model_b = MakeReadyModel("model-b", b);

  ApiKeyStore& keys = backend_->api_keys();
  auto key = keys.Create(
      {Role::kSubmitter, "tenant a", {absl::AsciiStrToUpper(c), a, c}}, "t");
  ASSERT_TRUE(key.ok()) << key.status();
  auto row = keys.Lookup(key->key_id);
  ASSERT_TRUE(row.ok()) << row.status();
  std::vector<std::string> want = {a, c};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(row->dataset_ids, want);  // lower-case, sorted, no repeats
  EXPECT_EQ(keys.Create({Role::kOperator, "", {a}}, "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      keys.Create({Role::kSubmitter, "", {"not-a-uuid"}}, "t").status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      keys.Create(
              {Role::kSubmitter, "", {"00000000-0000-4000-8000-000000000000"}},
              "t")
          .status()
          .code(),
      absl::StatusCode::kNotFound);
  auto all = keys.Create({Role::kSubmitter, "every dataset", {}}, "t");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(keys.Lookup(all->key_id)->dataset_ids.empty());

  // Naming model-b: NOT_FOUND, nothing written.
  SubmitParams named = Params(1, "named");
  named.scope_dataset_ids = want;
  named.scope_model_ids = {model_b};
  auto refused = backend_->erasures().Submit(named);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound)
      << refused.status();
  named.scope_model_ids = {model_a};
  auto allowed = backend_->erasures().Submit(named);
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  ASSERT_EQ(allowed->erasure.tasks.size(), 1u);
  EXPECT_EQ(allowed->erasure.tasks[0].model_id, model_a);

  // Unscoped: a task for model-a only, the orphans of c deleted, d's kept.
  SubmitParams p = Params(1, "unscoped");
  p.scope_dataset_ids = want;
  auto r = backend_->erasures().Submit(p);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->erasure.tasks.size(), 1u);
  EXPECT_EQ(r->erasure.tasks[0].model_id, model_a);
  EXPECT_EQ(backend_->datasets().Get(c)->subjects, 0);
  EXPECT_EQ(backend_->datasets().Get(d)->subjects, 1);
  EXPECT_EQ(backend_->datasets().Get(b)->subjects, 1);

  // Another tenant's key, scoped to b: model-b only.
  SubmitParams elsewhere = Params(1, "elsewhere");
  elsewhere.scope_dataset_ids = {b};
  auto other = backend_->erasures().Submit(elsewhere);
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_EQ(other->erasure.tasks.size(), 1u);
  EXPECT_EQ(other->erasure.tasks[0].model_id, model_b);
}

TEST_P(BackendContractTest, CancelOnlyBeforeAWorkerStarted) {
  MakeReadyModel("m", MakeDataset("d", {1, 2}));
  auto a = backend_->erasures().Submit(Params(1, "a"));
  ASSERT_TRUE(a.ok());
  auto denied = backend_->erasures().Cancel(a->erasure.id, "x", "client-9");
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  auto cancelled = backend_->erasures().Cancel(a->erasure.id, "x", "client-1");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state, "CANCELLED");
  EXPECT_EQ(cancelled->tasks[0].state, "CANCELLED");

  auto b = backend_->erasures().Submit(Params(2, "b"));
  ASSERT_TRUE(b.ok());
  auto batch = queue_->ClaimBatch();
  ASSERT_TRUE(batch.ok() && batch->has_value());
  auto late = backend_->erasures().Cancel(b->erasure.id, "x", "");
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
}

// ---- Claims and publication ----

TEST_P(BackendContractTest, PublishCompletesTheRequestAndDeletesRecords) {
  const std::string dataset = MakeDataset("d", {1, 2});
  const std::string model = MakeReadyModel("m", dataset);
  auto req = backend_->erasures().Submit(Params(1, "k"));
  ASSERT_TRUE(req.ok());

  auto batch = queue_->ClaimBatch();
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_TRUE(batch->has_value());
  EXPECT_EQ((*batch)->model.id, model);
  EXPECT_EQ((*batch)->dataset.id, dataset);
  ASSERT_EQ((*batch)->tasks.size(), 1u);
  EXPECT_EQ((*batch)->tasks[0].erasure_id, req->erasure.id);
  EXPECT_EQ((*batch)->tasks[0].subject_key, Subject(1));
  EXPECT_EQ((*batch)->tasks[0].token, 1);
  EXPECT_EQ(backend_->erasures().Get(req->erasure.id)->state, "RUNNING");
  EXPECT_TRUE(queue_->Renew(**batch).ok());

  auto latest = queue_->Latest(model);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->version, 1);
  // An artifact that is not what its digest says is refused whole.
  OwnedVersion lying = NewVersion(1, "weights v2");
  lying.req.artifact_sha256 = Sha256("other weights");
  EXPECT_EQ(queue_->Publish(**batch, lying, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(queue_->Latest(model)->version, 1);
  EXPECT_EQ(backend_->erasures().Get(req->erasure.id)->state, "RUNNING");
  auto out = queue_->Publish(**batch, NewVersion(1, "weights v2"), nullptr);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->version, 2);
  EXPECT_EQ(out->records_removed, 3);
  EXPECT_EQ(out->completed_erasures, std::vector<std::string>{req->erasure.id});

  auto done = backend_->erasures().Get(req->erasure.id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, "COMPLETED");
  EXPECT_EQ(TaskOf(*done, model).state, "DONE");
  EXPECT_EQ(TaskOf(*done, model).result_version, 2);
  auto d = backend_->datasets().Get(dataset);
  EXPECT_EQ(d->subjects, 1);
  EXPECT_EQ(d->train_records, 2);
  EXPECT_EQ(LatestArtifact(*queue_, model), "weights v2");
  // Grace 0: the version trained on the subject is gone in the same step.
  EXPECT_EQ(backend_->models().GetVersion(model, 1).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto v2 = backend_->models().GetVersion(model, 0);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->erasure_ids, std::vector<std::string>{req->erasure.id});
  EXPECT_EQ(v2->records_removed, 3);
  EXPECT_FALSE(queue_->ClaimBatch()->has_value());
  EXPECT_TRUE(*queue_->Idle());
}

TEST_P(BackendContractTest, TrainingRecordsLeaveOutTheAbsorbedSubject) {
  const std::string dataset = MakeDataset("d", {1, 2});
  const std::string a = MakeReadyModel("a", dataset);
  const std::string b = MakeReadyModel("b", dataset);
  auto req = backend_->erasures().Submit(Params(1, "k"));
  ASSERT_TRUE(req.ok());
  ASSERT_EQ(req->erasure.tasks.size(), 2u);

  auto first = queue_->ClaimBatch();
  ASSERT_TRUE(first.ok() && first->has_value());
  const std::string done = (*first)->model.id;
  const std::string pending = done == a ? b : a;
  ASSERT_TRUE(queue_->Publish(**first, NewVersion(1, "v2"), nullptr).ok());

  // The request waits for the other model, so the records stay, but the
  // model that absorbed the subject never reads it again.
  EXPECT_EQ(backend_->erasures().Get(req->erasure.id)->state, "RUNNING");
  EXPECT_EQ(TrainingSubjects(done), std::set<std::string>{Subject(2)});
  EXPECT_EQ(TrainingSubjects(pending),
            (std::set<std::string>{Subject(1), Subject(2)}));

  auto second = queue_->ClaimBatch();
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((*second)->model.id, pending);
  auto out =
      queue_->Publish(**second, NewVersion(1, "v2 of the other"), nullptr);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->records_removed, 3);
  EXPECT_EQ(backend_->erasures().Get(req->erasure.id)->state, "COMPLETED");
  EXPECT_EQ(TrainingSubjects(pending), std::set<std::string>{Subject(2)});
}

TEST_P(BackendContractTest, StaleTokenIsFailedPrecondition) {
  MakeReadyModel("m", MakeDataset("d", {1}));
  ASSERT_TRUE(backend_->erasures().Submit(Params(1, "k")).ok());
  auto stale = queue_->ClaimBatch();
  ASSERT_TRUE(stale.ok() && stale->has_value());
  ASSERT_TRUE(queue_->Release(**stale).ok());
  auto fresh = queue_->ClaimBatch();
  ASSERT_TRUE(fresh.ok() && fresh->has_value());
  EXPECT_EQ((*fresh)->tasks[0].token, 2);

  EXPECT_EQ(queue_->Renew(**stale).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      queue_->Publish(**stale, NewVersion(1, "v2"), nullptr).status().code(),
      absl::StatusCode::kFailedPrecondition);
  // Another owner holding the same token holds nothing either.
  auto other = backend_->NewWorkQueue(Options("worker-2"));
  EXPECT_EQ(other->Renew(**fresh).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(queue_->Publish(**fresh, NewVersion(1, "v2"), nullptr).ok());
}

TEST_P(BackendContractTest, PublishOnAMovedParentIsAborted) {
  const std::string model =
      MakeReadyModel("m", MakeDataset("d", {1, 2}), R"({"batchSize": 1})");
  auto r1 = backend_->erasures().Submit(Params(1, "k1"));
  auto r2 = backend_->erasures().Submit(Params(2, "k2"));
  ASSERT_TRUE(r1.ok() && r2.ok());
  auto first = queue_->ClaimBatch();
  ASSERT_TRUE(first.ok() && first->has_value());
  ASSERT_EQ((*first)->tasks.size(), 1u);
  ASSERT_TRUE(queue_->Publish(**first, NewVersion(1, "v2"), nullptr).ok());

  auto second = queue_->ClaimBatch();
  ASSERT_TRUE(second.ok() && second->has_value());
  auto moved = queue_->Publish(**second, NewVersion(1, "v2 again"), nullptr);
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(backend_->models().Get(model)->latest_version, 2);
  // Nothing was written: the lease still holds and a retry on v2 succeeds.
  EXPECT_TRUE(queue_->Renew(**second).ok());
  EXPECT_TRUE(queue_->Publish(**second, NewVersion(2, "v3"), nullptr).ok());
  EXPECT_EQ(backend_->models().Get(model)->latest_version, 3);
}

TEST_P(BackendContractTest, FailuresUntilDeadFailTheRequest) {
  const std::string model =
      MakeReadyModel("m", MakeDataset("d", {1}), R"({"maxAttempts": 2})");
  auto req = backend_->erasures().Submit(Params(1, "k"));
  ASSERT_TRUE(req.ok());
  auto first = queue_->ClaimBatch();
  ASSERT_TRUE(first.ok() && first->has_value());
  ASSERT_TRUE(queue_->Fail(**first, "engine exploded").ok());
  auto row = backend_->erasures().Get(req->erasure.id);
  EXPECT_EQ(TaskOf(*row, model).state, "QUEUED");
  EXPECT_EQ(TaskOf(*row, model).last_error, "engine exploded");
  EXPECT_EQ(row->state, "RUNNING");

  auto second = queue_->ClaimBatch();
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((*second)->tasks[0].token, 2);
  ASSERT_TRUE(queue_->Fail(**second, "engine exploded again").ok());
  row = backend_->erasures().Get(req->erasure.id);
  EXPECT_EQ(TaskOf(*row, model).state, "DEAD");
  EXPECT_EQ(row->state, "FAILED");
  EXPECT_NE(row->state_reason.find("engine exploded again"), std::string::npos);
  EXPECT_FALSE(queue_->ClaimBatch()->has_value());
  // A stale Fail is not ours: it changes nothing.
  EXPECT_TRUE(queue_->Fail(**first, "late").ok());
  EXPECT_EQ(
      TaskOf(*backend_->erasures().Get(req->erasure.id), model).last_error,
      "engine exploded again");
}

TEST_P(BackendContractTest, ExpiredLeaseIsRescuedAndFenced) {
  ASSERT_TRUE(CanAdvance()) << "the factory must say how to move time";
  const std::string model = MakeReadyModel("m", MakeDataset("d", {1}));
  auto req = backend_->erasures().Submit(Params(1, "k"));
  ASSERT_TRUE(req.ok());
  auto lost = queue_->ClaimBatch();
  ASSERT_TRUE(lost.ok() && lost->has_value());
  EXPECT_EQ(*queue_->RescueExpired(), 0);

  Advance(seconds(61));
  auto other = backend_->NewWorkQueue(Options("worker-2"));
  EXPECT_EQ(*other->RescueExpired(), 1);
  auto row = backend_->erasures().Get(req->erasure.id);
  EXPECT_EQ(TaskOf(*row, model).state, "QUEUED");
  EXPECT_NE(TaskOf(*row, model).last_error.find("expired"), std::string::npos);

  Advance(seconds(1));  // past the lost lease's short backoff
  auto rescued = other->ClaimBatch();
  ASSERT_TRUE(rescued.ok() && rescued->has_value());
  EXPECT_EQ((*rescued)->tasks[0].token, 2);
  EXPECT_EQ(
      queue_->Publish(**lost, NewVersion(1, "v2"), nullptr).status().code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(other->Publish(**rescued, NewVersion(1, "v2"), nullptr).ok());
  EXPECT_EQ(backend_->erasures().Get(req->erasure.id)->state, "COMPLETED");
}

TEST_P(BackendContractTest, LostLeasesAreBounded) {
  ASSERT_TRUE(CanAdvance()) << "the factory must say how to move time";
  const std::string model = MakeReadyModel("m", MakeDataset("d", {1}));
  auto req = backend_->erasures().Submit(Params(1, "k"));
  QueueOptions o = Options("worker-2");
  o.max_lost_leases = 1;
  auto strict = backend_->NewWorkQueue(o);
  auto batch = strict->ClaimBatch();
  ASSERT_TRUE(batch.ok() && batch->has_value());
  Advance(seconds(61));
  EXPECT_EQ(*strict->RescueExpired(), 1);
  auto row = backend_->erasures().Get(req->erasure.id);
  EXPECT_EQ(TaskOf(*row, model).state, "DEAD");
  EXPECT_EQ(row->state, "FAILED");
}

TEST_P(BackendContractTest, SisaBatchesTakeTheShardsTheyRetrain) {
  // One shard: every due task shares it, so all join a batch of size 1.
  MakeReadyModel("sisa", MakeDataset("d", {1, 2, 3}),
                 R"({"batchSize": 1, "sisa": {"shards": 1}})");
  for (int s : {1, 2, 3}) {
    ASSERT_TRUE(backend_->erasures().Submit(Params(s, std::to_string(s))).ok());
  }
  auto batch = queue_->ClaimBatch();
  ASSERT_TRUE(batch.ok() && batch->has_value());
  EXPECT_EQ((*batch)->tasks.size(), 3u);
}

// A model's training records come in id order, every one of its dataset
// and none of another's, across pages (5,000 a page) while two datasets'
// records interleave in id order: what the worker's training set is built
// from (issue 19: the pages of this read must each cost a page).
TEST_P(BackendContractTest, TrainingRecordsPageThroughInterleavedDatasets) {
  DatasetRow row;
  row.feature_shape = {2};
  row.feature_type = "uint8";
  row.num_classes = 2;
  std::string ids[2];
  for (int d = 0; d < 2; ++d) {
    row.name = "interleaved-" + std::to_string(d);
    auto created = backend_->datasets().Create(row, "admin");
    ASSERT_TRUE(created.ok()) << created.status();
    ids[d] = created->id;
  }
  // Ten uploads, alternating: each dataset's ids come in runs of 700.
  for (int round = 0; round < 10; ++round) {
    for (int d = 0; d < 2; ++d) {
      std::vector<RecordRow> records;
      for (int i = 0; i < 700; ++i) {
        records.push_back(RecordRow{Subject(d * 100000 + round * 700 + i), d,
                                    i % 7 == 0, "\x01\x02"});
      }
      ASSERT_TRUE(
          backend_->datasets().AddRecords(ids[d], records, "admin").ok());
    }
  }
  const std::string model = MakeReadyModel("paged", ids[1]);
  int64_t count = 0, last = 0;
  bool ordered = true, own = true;
  auto st = queue_->ForEachTrainingRecord(model, [&](RecordData& r) {
    ordered = ordered && r.id > last;
    own = own && r.label == 1;
    last = r.id;
    ++count;
    return absl::OkStatus();
  });
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(count, 7000);
  EXPECT_TRUE(ordered);
  EXPECT_TRUE(own);
}

// ---- Model jobs ----

TEST_P(BackendContractTest, TrainingJobIsRetriedThenFinished) {
  const std::string dataset = MakeDataset("d", {1});
  RegisterParams p;
  p.model.name = "trained";
  p.model.dataset_id = dataset;
  p.model.architecture_json = "{}";
  p.model.recipe_json = "{}";
  p.model.policy_json = "{}";
  auto model = backend_->models().Register(p, "admin");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->state, "TRAINING");
  EXPECT_FALSE(*queue_->Idle());

  auto job = queue_->ClaimModelJob();
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_TRUE((*job)->training);
  EXPECT_EQ((*job)->dataset.id, dataset);
  EXPECT_FALSE(queue_->ClaimModelJob()->has_value());  // leased
  EXPECT_TRUE(queue_->RenewModelJob(**job).ok());
  ASSERT_TRUE(queue_->FailModelJob(**job, "out of memory", false).ok());
  EXPECT_EQ(backend_->models().Get(model->id)->state, "TRAINING");

  auto retry = queue_->ClaimModelJob();
  ASSERT_TRUE(retry.ok() && retry->has_value());
  EXPECT_EQ((*retry)->token, (*job)->token + 1);
  EXPECT_EQ(FinishTraining(*queue_, **job, "w").code(),
            absl::StatusCode::kFailedPrecondition);
  // Bytes that are not what their digest says are refused, and change
  // nothing.
  StringByteStream other("not the trained weights");
  EXPECT_EQ(queue_
                ->FinishModelJob(**retry, &other, Sha256("trained weights"), "",
                                 "retrain", "")
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(backend_->models().Get(model->id)->state, "TRAINING");
  ASSERT_TRUE(FinishTraining(*queue_, **retry, "trained weights").ok());
  auto ready = backend_->models().Get(model->id);
  EXPECT_EQ(ready->state, "READY");
  EXPECT_EQ(ready->latest_version, 1);
  EXPECT_EQ(LatestArtifact(*queue_, model->id), "trained weights");
  EXPECT_TRUE(*queue_->Idle());
}

TEST_P(BackendContractTest, InvalidModelSkipsItsTasks) {
  const std::string dataset = MakeDataset("d", {1});
  RegisterParams p;
  p.model.name = "broken";
  p.model.dataset_id = dataset;
  p.model.architecture_json = "{}";
  p.model.recipe_json = "{}";
  p.model.policy_json = "{}";
  StringByteStream artifact("not a model");
  p.artifact = &artifact;
  p.artifact_sha256 = Sha256("not a model");
  auto model = backend_->models().Register(p, "admin");
  ASSERT_TRUE(model.ok());
  auto req = backend_->erasures().Submit(Params(1, "k"));
  ASSERT_TRUE(req.ok());
  ASSERT_EQ(req->erasure.tasks.size(), 1u);

  auto job = queue_->ClaimModelJob();
  ASSERT_TRUE(job.ok() && job->has_value());
  ASSERT_TRUE(queue_->FailModelJob(**job, "not loadable", true).ok());
  EXPECT_EQ(backend_->models().Get(model->id)->state, "INVALID");
  auto row = backend_->erasures().Get(req->erasure.id);
  EXPECT_EQ(TaskOf(*row, model->id).state, "SKIPPED");
  EXPECT_EQ(row->state, "COMPLETED");
  EXPECT_NE(row->state_reason.find("INVALID"), std::string::npos);
  EXPECT_EQ(backend_->datasets().Get(dataset)->subjects, 0);
  // Its versions, trained with the subject, are deleted rather than kept.
  EXPECT_EQ(*queue_->DeleteDueVersions(), 1);
  EXPECT_EQ(queue_->Latest(model->id).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// ---- Certificates ----

TEST_P(BackendContractTest, PublishHookIssuesAProvableCertificate) {
  const cert::KeyRing keys({cert::PrivateKey::Generate()});
  MakeReadyModel("m", MakeDataset("d", {1}));
  auto req = backend_->erasures().Submit(Params(1, "k"));
  auto batch = queue_->ClaimBatch();
  ASSERT_TRUE(batch.ok() && batch->has_value());
  ASSERT_TRUE(
      queue_->Publish(**batch, NewVersion(1, "v2"), IssueWith(keys)).ok());

  auto issued = backend_->certificates().Get(req->erasure.id);
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(issued->client_key_id, "client-1");
  EXPECT_EQ(issued->leaf_hash, cert::CertificateLeafHash(issued->envelope));
  auto envelope = cert::Envelope::Parse(issued->envelope);
  ASSERT_TRUE(envelope.ok());
  const auto public_keys = keys.PublicKeys();
  EXPECT_TRUE(cert::VerifyEnvelope(*envelope, public_keys).ok());

  // Nothing is signed until a key holder signs.
  EXPECT_EQ(backend_->certificates().NewestCheckpoint().status().code(),
            absl::StatusCode::kNotFound);
  auto checkpoint =
      backend_->certificates().SignCheckpoint(keys, "lethe.test/log");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->tree_size, 1);
  auto newest = backend_->certificates().NewestCheckpoint();
  ASSERT_TRUE(newest.ok()) << newest.status();
  EXPECT_EQ(newest->note, checkpoint->note);
  auto proof = backend_->certificates().InclusionProof(issued->leaf_index, 1);
  ASSERT_TRUE(proof.ok());
  EXPECT_TRUE(cert::VerifyInclusion(issued->leaf_index, 1, issued->leaf_hash,
                                    *proof, checkpoint->root_hash)
                  .ok());
  // Issuing again replays the stored certificate and appends nothing.
  auto record = cert::ParseStatement(envelope->payload);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->request_id, req->erasure.id);
  auto again = backend_->certificates().Issue(*record, keys);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->leaf_index, issued->leaf_index);
  EXPECT_EQ(*backend_->certificates().TreeSize(), 1);
}

TEST_P(BackendContractTest, FailingHookAbortsThePublication) {
  const std::string model = MakeReadyModel("m", MakeDataset("d", {1}));
  auto req = backend_->erasures().Submit(Params(1, "k"));
  auto batch = queue_->ClaimBatch();
  ASSERT_TRUE(batch.ok() && batch->has_value());
  auto failing = [](CertificateScope&, const std::vector<std::string>&) {
    return absl::InternalError("no signing key");
  };
  auto out = queue_->Publish(**batch, NewVersion(1, "v2"), failing);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(backend_->erasures().Get(req->erasure.id)->state, "RUNNING");
  EXPECT_EQ(backend_->models().Get(model)->latest_version, 1);
  EXPECT_EQ(backend_->datasets().Get((*batch)->dataset.id)->subjects, 1);
  EXPECT_TRUE(queue_->Publish(**batch, NewVersion(1, "v2"), nullptr).ok());
}

TEST_P(BackendContractTest, CertifyMissingIssuesWhatPublishCouldNot) {
  const cert::KeyRing keys({cert::PrivateKey::Generate()});
  MakeReadyModel("m", MakeDataset("d", {1, 2}), R"({"batchSize": 1})");
  std::vector<std::string> ids;
  for (int s : {1, 2}) {
    auto req = backend_->erasures().Submit(Params(s, std::to_string(s)));
    ASSERT_TRUE(req.ok());
    ids.push_back(req->erasure.id);
  }
  auto first = queue_->ClaimBatch();
  ASSERT_TRUE(first.ok() && first->has_value());
  ASSERT_TRUE(
      queue_->Publish(**first, NewVersion(1, "v2"), IssueWith(keys)).ok());
  auto old_checkpoint =
      backend_->certificates().SignCheckpoint(keys, "lethe.test/log");
  ASSERT_TRUE(old_checkpoint.ok());
  auto second = queue_->ClaimBatch();
  ASSERT_TRUE(second.ok() && second->has_value());
  ASSERT_TRUE(queue_->Publish(**second, NewVersion(2, "v3"), nullptr).ok());
  EXPECT_EQ(*backend_->certificates().TreeSize(), 1);

  auto visited = backend_->certificates().CertifyMissing(10, IssueWith(keys));
  ASSERT_TRUE(visited.ok()) << visited.status();
  EXPECT_EQ(*visited, 1);
  EXPECT_EQ(*backend_->certificates().CertifyMissing(10, IssueWith(keys)), 0);
  for (const auto& id : ids) {
    EXPECT_TRUE(backend_->certificates().Get(id).ok()) << id;
  }
  // The log grew; until a key holder signs, the newest stored checkpoint
  // is the old one.
  EXPECT_EQ(backend_->certificates().NewestCheckpoint()->tree_size, 1);
  auto checkpoint =
      backend_->certificates().SignCheckpoint(keys, "lethe.test/log");
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_EQ(checkpoint->tree_size, 2);
  EXPECT_EQ(backend_->certificates().NewestCheckpoint()->tree_size, 2);
  auto proof = backend_->certificates().ConsistencyProof(1, 2);
  ASSERT_TRUE(proof.ok());
  EXPECT_TRUE(cert::VerifyConsistency(1, 2, *proof, old_checkpoint->root_hash,
                                      checkpoint->root_hash)
                  .ok());
  EXPECT_EQ(backend_->certificates().CheckpointAt(1)->root_hash,
            old_checkpoint->root_hash);
  EXPECT_EQ(backend_->certificates().InclusionProof(0, 3).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto page = backend_->certificates().List({}, Page{1, std::nullopt});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->rows.size(), 1u);
  EXPECT_EQ(page->rows[0].leaf_index, 1);
  ASSERT_TRUE(page->next.has_value());
}

// ---- Notifications and gauges ----

TEST_P(BackendContractTest, ListenersHearNewTasks) {
  MakeReadyModel("m", MakeDataset("d", {1}));
  auto listener = backend_->Listen({kTasksChannel});
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE(backend_->erasures().Submit(Params(1, "k")).ok());
  auto got = (*listener)->Wait(std::chrono::milliseconds(5000));
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->empty());
}

TEST_P(BackendContractTest, QueueStatsCountStates) {
  MakeReadyModel("m", MakeDataset("d", {1, 2}));
  ASSERT_TRUE(backend_->erasures().Submit(Params(1, "a")).ok());
  ASSERT_TRUE(backend_->erasures().Submit(Params(9, "b")).ok());
  auto stats = backend_->ReadQueueStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->requests["queued"], 1);
  EXPECT_EQ(stats->requests["nothing_to_erase"], 1);
  EXPECT_EQ(stats->tasks["queued"], 1);
  EXPECT_EQ(stats->log_entries, 0);
}

// Issues 17 and 19: an artifact goes in from a stream and comes back in
// chunks of at most kArtifactChunkBytes, checked against its digest; bytes
// that do not hash to the digest given change nothing.
TEST_P(BackendContractTest, ArtifactsGoInStreamedAndComeBackInCheckedChunks) {
  const std::string dataset = MakeDataset("d", {1});
  std::string weights(kArtifactChunkBytes * 5 / 2, '\0');
  for (size_t i = 0; i < weights.size(); ++i) {
    weights[i] = static_cast<char>((i * 2654435761u) >> 13);
  }
  RegisterParams p;
  p.model.name = "big";
  p.model.dataset_id = dataset;
  p.model.architecture_json = R"({"kind": "KIND_TORCHSCRIPT"})";
  p.model.recipe_json = "{}";
  p.model.policy_json = "{}";
  const std::string shorter = weights.substr(1);
  StringByteStream wrong(shorter);
  p.artifact = &wrong;
  p.artifact_sha256 = Sha256(weights);
  auto refused = backend_->models().Register(p, "admin");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument)
      << refused.status();
  StringByteStream right(weights);
  p.artifact = &right;
  auto model = backend_->models().Register(p, "admin");  // the name is free
  ASSERT_TRUE(model.ok()) << model.status();
  auto version = backend_->models().GetVersion(model->id, 1);
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(version->size_bytes, static_cast<int64_t>(weights.size()));

  auto reader = backend_->models().OpenArtifact(p.artifact_sha256);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->size(), static_cast<int64_t>(weights.size()));
  std::string joined;
  std::string chunk;
  int chunks = 0;
  for (;;) {
    auto more = (*reader)->Next(&chunk);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    EXPECT_LE(chunk.size(), kArtifactChunkBytes);
    joined += chunk;
    ++chunks;
  }
  EXPECT_EQ(chunks, 3);
  EXPECT_TRUE(joined == weights);
  EXPECT_EQ(backend_->models().OpenArtifact(Sha256("absent")).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace lethe::storage::testing

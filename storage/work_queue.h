// WorkQueue: what a worker does to the database, exactly once.
//
// Erasure tasks are claimed in batches per model (FOR UPDATE SKIP LOCKED,
// with the model row locked first so that one model never has two batches
// in flight), leased to an owner with a fencing token (the attempt number)
// and renewed by heartbeat. Every later change names (task, token, owner):
// a worker whose lease expired and was rescued can never overwrite the
// next attempt's result. A result is published in one transaction: the new
// version, its report, the deletion of the subjects' records, the tasks
// done, the requests completed (and their subject keys cleared), the
// certificate hook and the audit entries — all or nothing.
//
// Model jobs (validating a registered artifact, training a built-in
// architecture) are leased the same way on the model row.
//
// Erased stays erased: records are read only through
// ForEachTrainingRecord, which names a model and leaves out every subject
// on the model's exclusion list (model_exclusions, migration 0005). A
// subject joins the list in the transaction that publishes the version
// absorbing its request, and, for a model claimed for training, when its
// erasure from the dataset is under way; it leaves the list with its
// records. So from the commit that absorbs a request, no later run of that
// model reads the subject, whatever other models still have to do.
//
// Attempts: `attempts` counts claims and is the fencing token. A task goes
// DEAD after max_attempts failures of the work itself (Fail), or after
// max_lost_leases expired leases (a worker killed, or cut off from the
// database, while running it); a released batch counts as neither.
//
// Thread-safe; any number of workers on any number of machines may share
// one database.
#ifndef LETHE_STORAGE_WORK_QUEUE_H_
#define LETHE_STORAGE_WORK_QUEUE_H_

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/certificate_store.h"
#include "storage/model_store.h"
#include "storage/types.h"

namespace lethe::storage {

struct LeasedTask {
  int64_t task_id = 0;
  int32_t token = 0;  // attempts at claim time: the fencing token
  std::string erasure_id;
  std::string subject_key;  // 32 bytes
};

struct TaskBatch {
  ModelRow model;
  DatasetRow dataset;
  std::vector<LeasedTask> tasks;
};

struct ModelJob {
  ModelRow model;
  DatasetRow dataset;
  int32_t token = 0;
  bool training = false;  // else: validation of version 1
  // Validation: the registered artifact's raw digest (OpenArtifact).
  std::string artifact_sha256;
};

// The newest live version of a model and its engine state; its artifact
// is read with OpenArtifact, a chunk at a time.
struct LatestVersion {
  int64_t version = 0;
  std::string artifact_sha256;  // raw
  std::string state;            // engine state (SISA, certified), or empty
  // Version 1 was trained by a worker with the model's recipe ("trained"),
  // not registered with weights: what a retrain's guarantee class rests on.
  bool trained_by_lethe = false;
};

struct PublishRequest {
  int64_t parent_version = 0;
  // Null: the batch completes without a new version (the subjects had no
  // training record in this model's data; their other records still go).
  // Read from its start, possibly more than once (a retried transaction),
  // and checked against `artifact_sha256`, its raw digest.
  ByteStream* artifact = nullptr;
  std::string artifact_sha256;
  std::string state;  // engine state of the new version, may be empty
  std::string produced_by;
  std::string report_json;
  int64_t grace_seconds = 0;  // superseded versions kept this long
};

struct PublishResult {
  int64_t version = 0;  // the new version, or the parent when none
  int64_t records_removed = 0;
  std::vector<std::string> completed_erasures;
};

// Called inside the publish transaction with the requests it completes
// (to issue their certificates); an error aborts the publication.
using CompletionHook = CertifyHook;

struct RecordData {
  int64_t id;
  std::string subject_key;
  int32_t label;
  bool test;
  std::string features;
};

struct QueueOptions {
  std::string owner;  // unique per worker thread, e.g. host:pid:n
  std::chrono::seconds lease{60};
  int default_batch = 64;
  // A batch never holds more tasks than this (a SISA model's per-shard
  // batching may add tasks beyond the policy's batch size, up to this).
  int max_batch = 10000;
  int default_max_attempts = 5;
  // Expired leases a task survives before it goes DEAD (its request
  // FAILED): a bound for a model that kills every worker that runs it.
  int max_lost_leases = 20;
  double retry_base_seconds = 10;
  double retry_max_seconds = 900;
  // The worker's device kind: "cpu" or "cuda". Claims skip models whose
  // policy requires the other kind (UnlearningPolicy.device). Empty: claim
  // every model (tests, tools).
  std::string device_kind;
};

class WorkQueue {
 public:
  virtual ~WorkQueue() = default;

  virtual const QueueOptions& options() const = 0;

  // Returns expired leases to the queue (or DEAD once max_lost_leases are
  // spent, failing the request). Does not count as a failure of the work.
  // Returns how many.
  virtual absl::StatusOr<int> RescueExpired() = 0;

  // Settles the queued tasks of INVALID models: SKIPPED, their versions
  // (trained with the subjects, and never to be unlearned) scheduled for
  // deletion, and their requests completed (records deleted) where no
  // other task is left. Returns how many tasks.
  virtual absl::StatusOr<int> SkipInvalidModels() = 0;

  // Claims up to the model's batch size of QUEUED tasks of one READY model
  // (honouring the policy's batch window). nullopt when nothing is ready.
  virtual absl::StatusOr<std::optional<TaskBatch>> ClaimBatch() = 0;
  // FAILED_PRECONDITION when any lease of the batch was lost.
  virtual absl::Status Renew(const TaskBatch& batch) = 0;
  // Gives the batch back unharmed (a draining worker, the database lost
  // mid-run): no failure is counted.
  virtual absl::Status Release(const TaskBatch& batch) = 0;
  // Records a failure of the work itself: back to the queue after an
  // exponential backoff with jitter, or DEAD (request FAILED) after the
  // policy's max_attempts failures.
  virtual absl::Status Fail(const TaskBatch& batch,
                            const std::string& error) = 0;

  virtual absl::StatusOr<LatestVersion> Latest(const std::string& model_id) = 0;
  // An artifact by raw digest (a LatestVersion's, a ModelJob's), read a
  // chunk at a time, each in its own short read, and checked against the
  // digest at the end (model_store.h, ArtifactReader). NOT_FOUND if none.
  virtual absl::StatusOr<std::unique_ptr<ArtifactReader>> OpenArtifact(
      const std::string& sha256) = 0;
  // Streams the records of the model's dataset that the model may train
  // on, in id order: every record except those of the subjects on the
  // model's exclusion list. The only way records reach a worker.
  virtual absl::Status ForEachTrainingRecord(
      const std::string& model_id,
      const std::function<absl::Status(RecordData&)>& fn) = 0;

  // FAILED_PRECONDITION if a lease was lost (another attempt claimed a
  // task: a lease that expired but was not yet rescued still publishes, as
  // nothing else can have run it), ABORTED if another version was
  // published since `parent_version`.
  virtual absl::StatusOr<PublishResult> Publish(const TaskBatch& batch,
                                                const PublishRequest& request,
                                                const CompletionHook& hook) = 0;

  // Deletes superseded versions whose grace period ended (artifacts too,
  // once no live version refers to them). Returns how many.
  virtual absl::StatusOr<int> DeleteDueVersions() = 0;

  // A training job's claim also puts every subject whose erasure from the
  // dataset is under way on the model's exclusion list.
  virtual absl::StatusOr<std::optional<ModelJob>> ClaimModelJob() = 0;

  // True when nothing is left that this queue's worker could claim now or
  // later: no leased task, no queued task and no model job on a model its
  // device may run (tasks of models waiting for another device kind do not
  // count). For --exit-when-idle.
  virtual absl::StatusOr<bool> Idle() = 0;
  virtual absl::Status RenewModelJob(const ModelJob& job) = 0;
  // The model becomes READY; a trained model gets version 1 (`artifact`
  // non-null: read from its start and checked against `artifact_sha256`,
  // its raw digest, as PublishRequest's).
  virtual absl::Status FinishModelJob(const ModelJob& job, ByteStream* artifact,
                                      const std::string& artifact_sha256,
                                      const std::string& state,
                                      const std::string& produced_by,
                                      const std::string& report_json) = 0;
  // `permanent`: the model is INVALID with `reason` (its queued erasure
  // tasks are SKIPPED, as SkipInvalidModels); otherwise the job is retried
  // after a backoff, and INVALID after max attempts.
  virtual absl::Status FailModelJob(const ModelJob& job,
                                    const std::string& reason,
                                    bool permanent) = 0;
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_WORK_QUEUE_H_

// PgWorkQueue: the WorkQueue (storage/work_queue.h) in PostgreSQL.
//
// Erasure tasks are claimed in batches per model (FOR UPDATE SKIP LOCKED,
// with the model row locked first so that one model never has two batches
// in flight); every later change names (task, attempts = token, owner) in
// its WHERE clause, so a worker whose lease expired can never overwrite
// the next attempt's result. Model jobs are leased on the model row.
#ifndef LETHE_STORAGE_POSTGRES_WORK_QUEUE_H_
#define LETHE_STORAGE_POSTGRES_WORK_QUEUE_H_

#include <string>

#include "storage/postgres/artifact_store.h"
#include "storage/postgres/database.h"
#include "storage/work_queue.h"

namespace lethe::storage {

class PgWorkQueue final : public WorkQueue {
 public:
  PgWorkQueue(Database* db, ArtifactStore* artifacts, QueueOptions options)
      : db_(db), artifacts_(artifacts), options_(std::move(options)) {}

  const QueueOptions& options() const override { return options_; }
  absl::StatusOr<int> RescueExpired() override;
  absl::StatusOr<int> SkipInvalidModels() override;
  absl::StatusOr<std::optional<TaskBatch>> ClaimBatch() override;
  absl::Status Renew(const TaskBatch& batch) override;
  absl::Status Release(const TaskBatch& batch) override;
  absl::Status Fail(const TaskBatch& batch, const std::string& error) override;
  absl::StatusOr<LatestVersion> Latest(const std::string& model_id) override;
  absl::StatusOr<std::unique_ptr<ArtifactReader>> OpenArtifact(
      const std::string& sha256) override;
  absl::Status ForEachTrainingRecord(
      const std::string& model_id,
      const std::function<absl::Status(RecordData&)>& fn) override;
  absl::StatusOr<PublishResult> Publish(const TaskBatch& batch,
                                        const PublishRequest& request,
                                        const CompletionHook& hook) override;
  absl::StatusOr<int> DeleteDueVersions() override;
  absl::StatusOr<std::optional<ModelJob>> ClaimModelJob() override;
  absl::StatusOr<bool> Idle() override;
  absl::Status RenewModelJob(const ModelJob& job) override;
  absl::Status FinishModelJob(const ModelJob& job, ByteStream* artifact,
                              const std::string& artifact_sha256,
                              const std::string& state,
                              const std::string& produced_by,
                              const std::string& report_json) override;
  absl::Status FailModelJob(const ModelJob& job, const std::string& reason,
                            bool permanent) override;

 private:
  double BackoffSeconds(int attempts) const;
  // Publish's steps, inside its transaction.
  absl::StatusOr<int64_t> LockForPublish(Txn& txn, const TaskBatch& batch,
                                         int64_t parent_version);
  absl::Status StoreVersion(Txn& txn, const TaskBatch& batch,
                            const PublishRequest& req, int64_t version);
  // The model and dataset rows of a claimed batch or job.
  absl::Status FillRows(const std::string& model_id, ModelRow* model,
                        DatasetRow* dataset);

  Database* db_;              // not owned
  ArtifactStore* artifacts_;  // not owned
  const QueueOptions options_;
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_POSTGRES_WORK_QUEUE_H_

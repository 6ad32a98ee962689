// The in-memory WorkQueue (internal to storage/memory/): claims and leases
// in queue_claims.cc, publication in queue_publish.cc, model jobs in
// queue_model_jobs.cc. It mirrors storage/postgres/work_queue.cc; each
// call is one step under the Core's mutex.
#ifndef LETHE_STORAGE_MEMORY_WORK_QUEUE_H_
#define LETHE_STORAGE_MEMORY_WORK_QUEUE_H_

#include <optional>
#include <string>

#include "storage/memory/core.h"
#include "storage/work_queue.h"

namespace lethe::storage::memory {

class MemoryWorkQueue final : public WorkQueue {
 public:
  MemoryWorkQueue(Core* core, QueueOptions options)
      : core_(core), options_(std::move(options)) {}

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
  int64_t LeaseUs() const { return options_.lease.count() * 1000000; }
  // Microseconds of the `n`-th backoff (n from 0): the base doubled n
  // times (at most 10), with equal jitter, capped at retry_max_seconds.
  int64_t BackoffUs(int n) const;
  // The task of `t` if this queue still holds its lease, else nullptr.
  static Task* Held(State& s, const LeasedTask& t, const std::string& owner);
  // The model (and its dataset, with counts) as the batch or job carries it.
  static absl::Status FillRows(const State& s, const std::string& model_id,
                               ModelRow* model, DatasetRow* dataset);
  static absl::StatusOr<LatestVersion> LatestIn(const State& s,
                                                const std::string& model_id);
  absl::StatusOr<PublishResult> PublishIn(State& s, const TaskBatch& batch,
                                          const PublishRequest& request,
                                          const std::string& artifact,
                                          const CompletionHook& hook,
                                          int64_t now);

  Core* core_;  // not owned
  const QueueOptions options_;
};

}  // namespace lethe::storage::memory

#endif  // LETHE_STORAGE_MEMORY_WORK_QUEUE_H_

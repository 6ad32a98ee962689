// Worker: turns queued erasure tasks into new model versions, and
// registered models into usable ones.
//
// Each loop thread claims work from storage (storage::WorkQueue), runs the
// engine (worker::ModelEngine) on it while a heartbeat renews the lease, and
// publishes the result in one transaction. Nothing is acknowledged before
// that commit, so a worker killed at any point leaves either no trace or
// the whole result; the lease then expires and another worker (or this one,
// restarted) redoes the attempt.
#ifndef LETHE_WORKER_WORKER_H_
#define LETHE_WORKER_WORKER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "cert/keys.h"
#include "observability/log.h"
#include "observability/worker_metrics.h"
#include "storage/backend.h"
#include "storage/work_queue.h"
#include "worker/engine/model_engine.h"

namespace lethe::worker {

struct WorkerOptions {
  std::string database_url = "postgresql:///lethe";
  std::string artifact_dir;  // empty: artifacts in PostgreSQL
  // Where a run's training set is spooled for the engine
  // (worker/training_set.h); empty: the system's temporary directory.
  std::string scratch_dir;
  std::string device = "auto";
  int threads = 0;      // LibTorch intra-op threads; 0 = all cores
  int concurrency = 1;  // engine runs at once
  // How the engine runs: "sandbox", each call in a confined lethe-engine
  // process with no keys or credentials (worker/engine/sandbox.h), or
  // "in-process", for models whose code is trusted.
  std::string engine = "sandbox";
  // The sandbox's binary (empty: lethe-engine beside this executable),
  // isolation and limits.
  SandboxOptions sandbox;
  std::chrono::seconds lease{60};
  int default_batch = 64;
  int max_batch = 1000;  // cap on any policy's batch size
  double retry_base_seconds = 10;
  double retry_max_seconds = 900;
  int max_lost_leases = 20;              // QueueOptions::max_lost_leases
  std::chrono::milliseconds poll{5000};  // fallback when NOTIFY is missed
  // Exit once no task or model job is left (queued, leased or backing off).
  bool exit_when_idle = false;
  std::string owner_prefix;  // default host:pid
  // Test-only: SIGKILL this process at a named point ("training",
  // "after_artifact", "before_commit", "after_commit").
  std::string fault_point;
  // Signing keys for completion certificates, issued in the transaction
  // that completes each request. Empty: requests complete without one, and
  // a worker that has keys later issues the missing ones.
  std::shared_ptr<const cert::KeyRing> signing_keys;
  // The origin line of the checkpoints this worker signs (C2SP
  // tlog-checkpoint): the log's name, the same for every worker. Workers
  // sign a checkpoint right after issuing certificates and in housekeeping
  // when the log grew; the API server holds no private key.
  std::string log_origin = "lethe.local/erasure-log";
  // Where to record task metrics; may be null.
  observability::WorkerMetrics* metrics = nullptr;
  // Structured log (observability/log.h); null: info and above on stderr.
  std::shared_ptr<const observability::Logger> logger;
};

class Worker {
 public:
  // Runs on `options.database_url` (storage::OpenPostgres) with the
  // in-process engine on `options.device`.
  explicit Worker(WorkerOptions options);
  // Runs on `backend` and `engine`; either may be null for the default
  // above (database_url, artifact_dir, device and threads then unused).
  Worker(WorkerOptions options, std::shared_ptr<storage::Backend> backend,
         std::shared_ptr<ModelEngine> engine);
  ~Worker();

  // Runs the loops until Stop() or, with exit_when_idle, until idle.
  absl::Status Run();
  // Stops claiming; running batches finish.
  void Stop();
  // Gives every in-flight batch back to the queue at once (drain deadline
  // passed): their results, if they still arrive, are fenced off.
  void ReleaseInFlight();
  bool busy() const { return in_flight_ > 0; }

 private:
  struct BatchRun;
  void Loop(int index);
  // Rescues expired leases, skips tasks of INVALID models, deletes due
  // versions, issues missing certificates (loop 0 only).
  void Housekeeping(storage::WorkQueue& queue);
  // Signs a checkpoint of the certificate log if it grew since the last
  // one (storage::CertificateStore::SignCheckpoint); logs a failure.
  void SignCheckpoint();
  // Until a change notification or the poll interval; opens `listener`
  // when needed and drops it when it broke.
  void WaitForWork(std::unique_ptr<storage::ChangeListener>& listener);
  bool RunOnce(storage::WorkQueue& queue);  // true if it did work
  void RunBatch(storage::WorkQueue& queue, storage::TaskBatch batch);
  // Loads, runs the engine and fills run.pub; an error is UNAVAILABLE when
  // storage failed (the batch is released), else the work failed.
  absl::Status UnlearnBatch(BatchRun& run);
  // Publishes run.pub with the certificates; nullopt when it did not (the
  // lease was lost, the model moved on, or storage failed: each handled).
  std::optional<storage::PublishResult> PublishBatch(BatchRun& run);
  // Release on UNAVAILABLE, else a counted failure of the work.
  void FailBatch(storage::WorkQueue& queue, const storage::TaskBatch& batch,
                 const absl::Status& why);
  void RecordBatch(const BatchRun& run,
                   const storage::PublishResult& published);
  void RunModelJob(storage::WorkQueue& queue, storage::ModelJob job);
  void Fault(const std::string& point) const;

  WorkerOptions options_;
  const observability::Logger log_;
  std::shared_ptr<storage::Backend> backend_;
  std::shared_ptr<ModelEngine> engine_;
  std::string device_kind_;  // "cpu" or "cuda": which models it claims
  std::atomic<bool> stop_{false};
  std::atomic<int> in_flight_{0};
  std::mutex mu_;
  std::vector<std::pair<storage::WorkQueue*, storage::TaskBatch>> running_;
};

}  // namespace lethe::worker

#endif  // LETHE_WORKER_WORKER_H_

// Backend: everything lethe keeps, behind one seam.
//
// The layers above storage/ (server/, worker/, observability/) see only
// this interface and the store interfaces it hands out, never a database
// API; leveldb's Env is the model. The product runs one implementation,
// PostgreSQL (storage/postgres/backend.h: storage::OpenPostgres); tests of
// the layers above may run the in-memory one (storage/memory/), which keeps
// the same contracts in one process.
//
// Thread-safe. The stores live as long as the Backend.
#ifndef LETHE_STORAGE_BACKEND_H_
#define LETHE_STORAGE_BACKEND_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/api_key_store.h"
#include "storage/certificate_store.h"
#include "storage/dataset_store.h"
#include "storage/erasure_store.h"
#include "storage/model_store.h"
#include "storage/queue_stats.h"
#include "storage/work_queue.h"

namespace lethe::storage {

// Change channels: an erasure request changed (payload: its id); tasks or
// model jobs became claimable (no payload).
inline constexpr char kErasureChangedChannel[] = "lethe_erasure_changed";
inline constexpr char kTasksChannel[] = "lethe_tasks";
inline constexpr char kModelsChannel[] = "lethe_models";

// A subscription to change channels. Not thread-safe: one thread waits.
class ChangeListener {
 public:
  virtual ~ChangeListener() = default;
  // Waits up to `timeout` for notifications and returns their payloads
  // (empty on timeout). UNAVAILABLE when the subscription broke: make a new
  // listener. Notifications are hints: a missed one costs the caller one
  // poll interval, never correctness.
  virtual absl::StatusOr<std::vector<std::string>> Wait(
      std::chrono::milliseconds timeout) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Makes the store usable: applies pending schema migrations (`migrate`)
  // or checks that the store answers. UNAVAILABLE while it cannot be
  // reached (callers retry with backoff); other errors are permanent.
  virtual absl::Status Prepare(bool migrate) = 0;
  // OK when the store answers.
  virtual absl::Status Ping() = 0;

  virtual ErasureStore& erasures() = 0;
  virtual DatasetStore& datasets() = 0;
  virtual ModelStore& models() = 0;
  virtual ApiKeyStore& api_keys() = 0;
  virtual CertificateStore& certificates() = 0;

  // A queue for one worker thread (`options.owner` unique per thread).
  virtual std::unique_ptr<WorkQueue> NewWorkQueue(
      const QueueOptions& options) = 0;

  // Subscribes to `channels` (the constants above).
  virtual absl::StatusOr<std::unique_ptr<ChangeListener>> Listen(
      const std::vector<std::string>& channels) = 0;

  // The queue's state for the operators' gauges; a bounded, cheap read.
  virtual absl::StatusOr<QueueStats> ReadQueueStats() = 0;
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_BACKEND_H_

// Internals of the in-memory backend (storage/memory/backend.h): the rows
// it keeps, the one mutex over them, and the helpers that several stores
// share. Not for use outside storage/memory/.
//
// The rows mirror the tables of storage/postgres/migrations/; an optional
// or empty field stands for a NULL column.
#ifndef LETHE_STORAGE_MEMORY_CORE_H_
#define LETHE_STORAGE_MEMORY_CORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "storage/backend.h"
#include "storage/memory/backend.h"

namespace lethe::storage::memory {

struct Request {
  ErasureRow row;  // `tasks` is filled on reading (RequestRow)
  std::string body_sha256;
  std::string subject_key;  // empty once cleared
};

struct Task {
  int64_t id = 0;
  std::string erasure_id;
  std::string model_id;
  std::string state = "QUEUED";
  int32_t attempts = 0;  // claims: the fencing token
  int32_t failures = 0;
  int32_t lost_leases = 0;
  int64_t not_before_us = 0;
  std::string lease_owner;
  std::optional<int64_t> lease_expires_us;
  std::string last_error;
  std::optional<std::string> method;
  int64_t result_version = 0;
  int64_t records_removed = 0;
  int64_t created_us = 0;
  int64_t updated_us = 0;
};

struct Record {
  std::string dataset_id;
  RecordRow row;
};

struct Model {
  ModelRow row;     // latest_version is computed on reading (ModelRowOf)
  int64_t seq = 0;  // creation order, for equal created_us
  int32_t job_attempts = 0;
  int32_t job_failures = 0;
  int32_t job_lost_leases = 0;
  int64_t job_not_before_us = 0;
  std::string lease_owner;
  std::optional<int64_t> lease_expires_us;
};

struct Version {
  ModelVersionRow row;       // erasure_ids are filled on reading
  std::string state_sha256;  // empty: no engine state
  std::optional<int64_t> delete_after_us;
};

struct Exclusion {
  std::string erasure_id;
  int64_t version = 0;
};

struct Notice {
  std::string channel;
  std::string payload;
};

struct State {
  std::map<std::string, Request> requests;  // by id
  std::map<std::pair<std::string, std::string>, std::string> by_idempotency;
  std::map<int64_t, Task> tasks;  // by id, in creation order
  int64_t next_task_id = 1;
  std::map<std::string, DatasetRow> datasets;  // counts filled on reading
  std::map<int64_t, Record> records;           // by id
  int64_t next_record_id = 1;
  std::map<std::string, Model> models;
  int64_t next_model_seq = 1;
  std::map<std::pair<std::string, int64_t>, Version> versions;
  std::map<std::string, std::string> artifacts;  // digest -> bytes
  // (model id, subject key) -> why.
  std::map<std::pair<std::string, std::string>, Exclusion> exclusions;
  std::map<std::string, ApiKeyRow> api_keys;
  std::vector<std::string> leaves;                  // the log's leaf hashes
  std::vector<IssuedCertificate> certificates;      // by leaf index
  std::map<std::string, int64_t> certificate_of;    // request id -> leaf
  std::map<int64_t, StoredCheckpoint> checkpoints;  // by tree size
  std::vector<Notice> pending;  // sent when the call succeeds
};

// Fans notifications out to the listeners of their channels.
class ChangeHub {
 public:
  struct Inbox {
    base::Mutex mu;
    base::CondVar changed;  // payloads gained entries
    std::set<std::string> channels;
    std::vector<std::string> payloads ABSL_GUARDED_BY(mu);
  };
  void Add(const std::shared_ptr<Inbox>& inbox);
  void Remove(const Inbox* inbox);
  void Send(const std::vector<Notice>& notices);

 private:
  base::Mutex mu_;
  std::vector<std::weak_ptr<Inbox>> inboxes_ ABSL_GUARDED_BY(mu_);
};

// The state and its mutex, shared by every store and queue of a backend.
class Core {
 public:
  explicit Core(MemoryOptions options);

  int64_t Now() const { return now_us_(); }
  const std::shared_ptr<ChangeHub>& hub() const { return hub_; }

  // Runs `fn` on the state under the mutex. The notifications it queued go
  // out if it succeeds and are dropped if it fails. `fn` must write nothing
  // before its last possible error (or use RunAtomic).
  template <typename Fn>
  auto Run(Fn&& fn) {
    base::MutexLock lock(&mu_);
    auto result = fn(state_);
    Finish(result.ok());
    return result;
  }
  // As Run, and a failing `fn`'s writes are undone (the state is copied
  // first).
  template <typename Fn>
  auto RunAtomic(Fn&& fn) {
    base::MutexLock lock(&mu_);
    State saved = state_;
    auto result = fn(state_);
    if (!result.ok()) state_ = std::move(saved);
    Finish(result.ok());
    return result;
  }

 private:
  void Finish(bool ok) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::function<int64_t()> now_us_;
  std::shared_ptr<ChangeHub> hub_ = std::make_shared<ChangeHub>();
  base::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_);
};

// ---- Shared helpers (core.cc unless noted) ----

// A random (version 4) lower-case UUID.
std::string NewUuid();
bool IsTerminal(std::string_view erasure_state);

// The request with its tasks (in model id order).
ErasureRow RequestRow(const State& s, const Request& r);
// Queues the erasure-changed notification (PostgreSQL's update trigger)
// and stamps updated_us.
void Touch(State& s, Request& r, int64_t now);
ModelRow ModelRowOf(const State& s, const Model& m);
DatasetRow DatasetRowOf(const State& s, const DatasetRow& d);
// Highest version number of the model, deleted ones included; 0 if none.
int64_t MaxVersion(const State& s, const std::string& model_id);
// A worker's new model file read whole and checked against its digest
// (INVALID_ARGUMENT, the postgres stores' answer); "" for none.
absl::StatusOr<std::string> ReadCheckedArtifact(ByteStream* in,
                                                const std::string& sha256);

// The policy fields the queue honours (protobuf JSON names); 0 / "" when
// absent or unreadable (policy.cc).
struct Policy {
  int batch_size = 0;
  int max_attempts = 0;
  int batch_window_seconds = 0;
  int sisa_shards = 0;
  std::string device;  // e.g. "DEVICE_REQUIREMENT_CUDA"
};
Policy ParsePolicy(std::string_view json);
// The recipe's seed as decimal text ("0" when absent), as the SISA shard
// hash salts with it (core::AssignSubject).
std::string RecipeSeed(std::string_view recipe_json);
// Whether a worker of `device_kind` ("cpu", "cuda", "" = any) may run it.
bool DeviceAllows(const Policy& policy, const std::string& device_kind);

// ---- Settling (settle.cc), each inside the caller's call ----

struct Settled {
  std::vector<std::string> completed;  // requests this call completed
  int64_t removed_in_dataset = 0;      // records removed from `dataset_id`
};
// storage/postgres/work_queue.cc's SettleRequests, for `erasure_ids`.
Settled SettleRequests(State& s, const std::set<std::string>& erasure_ids,
                       const std::string& model_id,
                       const std::string& dataset_id, int64_t now);
void SettleFailedRequests(State& s, const std::set<std::string>& erasure_ids,
                          int64_t now);
// SKIPs the queued tasks of INVALID models (`model_id`, or all when empty).
int SkipTasksOfInvalidModels(State& s, const std::string& model_id,
                             int64_t now);
void ExcludeSubjectsBeingErased(State& s, const std::string& model_id);
// Deletes due versions of `model_id` (all when empty); returns how many.
int DeleteVersionsDue(State& s, const std::string& model_id, int64_t now);

// ---- Certificates (certificate_store.cc) ----

// A CertificateScope over `s`, for code already holding the mutex.
std::unique_ptr<CertificateScope> NewScope(State& s, int64_t now);

// ---- Stores, each over `core` (not owned) ----

std::unique_ptr<ErasureStore> NewErasureStore(Core* core);
std::unique_ptr<DatasetStore> NewDatasetStore(Core* core);
std::unique_ptr<ModelStore> NewModelStore(Core* core);
std::unique_ptr<ApiKeyStore> NewApiKeyStore(Core* core);
std::unique_ptr<CertificateStore> NewCertificateStore(Core* core);
std::unique_ptr<WorkQueue> NewWorkQueue(Core* core,
                                        const QueueOptions& options);

}  // namespace lethe::storage::memory

#endif  // LETHE_STORAGE_MEMORY_CORE_H_

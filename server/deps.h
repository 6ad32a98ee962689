// What the service handlers share; owned by LetheServer, outliving every
// call.
#ifndef LETHE_SERVER_DEPS_H_
#define LETHE_SERVER_DEPS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "observability/log.h"
#include "server/auth.h"
#include "server/change_hub.h"
#include "server/executor.h"
#include "server/grpc_status.h"
#include "storage/dataset_store.h"
#include "storage/erasure_store.h"
#include "storage/model_store.h"

namespace lethe::server {

struct Limits {
  // All parts of one upload as sent, and each part decompressed.
  int64_t max_upload_bytes = int64_t{1} << 30;
  int64_t max_artifact_bytes = int64_t{2} << 30;  // one model file
  int64_t max_chunk_bytes = int64_t{4} << 20;     // one stream message
  // Records in one upload; a gzip part's decompressed bytes per compressed
  // byte (0: any). Issue 17, item 3.
  int64_t max_upload_records = 10'000'000;
  double max_upload_expansion = 200;
  // Bytes of uploads and model files that calls in flight hold in spool
  // files on disk, all calls together (0: no limit).
  int64_t max_spooled_bytes = int64_t{8} << 30;
};

// What the calls in flight hold of uploads (in memory) or model files (in
// spool files), capped server-wide so that concurrent calls cannot exhaust
// the server's memory or disk (issue 17, item 3). `refusal` is the message
// of the RESOURCE_EXHAUSTED a call gets at the cap. Thread-safe.
class ByteBudget {
 public:
  ByteBudget(int64_t max, std::string refusal)
      : max_(max), refusal_(std::move(refusal)) {}
  // False, taking nothing, when `n` more would exceed the cap.
  bool Take(int64_t n) {
    int64_t used = used_.load();
    do {
      if (max_ > 0 && used + n > max_) return false;
    } while (!used_.compare_exchange_weak(used, used + n));
    return true;
  }
  void Give(int64_t n) { used_ -= n; }
  int64_t used() const { return used_.load(); }
  const std::string& refusal() const { return refusal_; }

 private:
  const int64_t max_;
  const std::string refusal_;
  std::atomic<int64_t> used_{0};
};

// What a call holds of a ByteBudget, given back when it ends.
class BudgetHold {
 public:
  explicit BudgetHold(ByteBudget* budget) : budget_(budget) {}
  ~BudgetHold() { Release(); }
  BudgetHold(const BudgetHold&) = delete;
  BudgetHold& operator=(const BudgetHold&) = delete;
  // RESOURCE_EXHAUSTED when the server holds its limit already.
  absl::Status Take(int64_t n) {
    if (budget_ == nullptr) return absl::OkStatus();
    if (!budget_->Take(n))
      return absl::ResourceExhaustedError(budget_->refusal());
    held_ += n;
    return absl::OkStatus();
  }
  // Gives everything back (the call freed its buffers, or is finishing).
  void Release() {
    if (budget_ != nullptr) budget_->Give(held_);
    held_ = 0;
  }

 private:
  ByteBudget* budget_;
  int64_t held_ = 0;
};

// Open WatchErasure streams per API key, capped (issue 17, item 4).
// Thread-safe.
class WatchSlots {
 public:
  explicit WatchSlots(int max_per_key) : max_(max_per_key) {}
  // False when `key_id` holds max_per_key streams already (<= 0: no cap).
  bool Acquire(const std::string& key_id);
  void Release(const std::string& key_id);

 private:
  const int max_;
  std::mutex mu_;
  std::map<std::string, int> open_;  // guarded by mu_
};

struct Deps {
  storage::ErasureStore* erasures;
  storage::DatasetStore* datasets;
  storage::ModelStore* models;
  Authenticator* auth;
  Executor* executor;
  ChangeHub* changes;
  WatchSlots* watches = nullptr;  // never null in a server
  std::string server_secret;
  Limits limits;
  ByteBudget* spooled = nullptr;  // never null in a server
  // Where uploads and registrations spool what they receive (empty: the
  // temporary directory).
  std::string spool_dir;
  // Never null. Lines name requests by id, never by subject.
  const observability::Logger* logger = nullptr;
};

// The answer to a call the executor has no room for.
inline grpc::Status Busy() {
  return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      "the server is busy; retry with backoff");
}

// Runs `work` on the executor and finishes the unary call with its status.
// `work` gets the call's AuthMetadata, copied here on the gRPC thread: code
// on the executor never reads the context (see auth.h). A call that
// Authenticator::Precheck refuses, or that finds the executor full, is
// answered here without queueing anything.
inline grpc::ServerUnaryReactor* Offload(
    grpc::CallbackServerContext* ctx, const Deps* deps,
    std::function<absl::Status(const AuthMetadata&)> work) {
  auto* reactor = ctx->DefaultReactor();
  AuthMetadata md = AuthMetadata::From(*ctx);
  if (auto refused = deps->auth->Precheck(md)) {
    reactor->Finish(ToGrpc(*refused));
    return reactor;
  }
  if (!deps->executor->TrySubmit(
          [reactor, deps, md = std::move(md), work = std::move(work)] {
            reactor->Finish(ToGrpc(work(md), deps->logger));
          })) {
    reactor->Finish(Busy());
  }
  return reactor;
}

}  // namespace lethe::server

#endif  // LETHE_SERVER_DEPS_H_

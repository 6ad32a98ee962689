// What the service handlers share; owned by LetheServer, outliving every
// call.
#ifndef LETHE_SERVER_DEPS_H_
#define LETHE_SERVER_DEPS_H_

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
  int64_t max_upload_bytes = int64_t{1} << 30;    // all parts of one upload
  int64_t max_artifact_bytes = int64_t{2} << 30;  // one model file
  int64_t max_chunk_bytes = int64_t{4} << 20;     // one stream message
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

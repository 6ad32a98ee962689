// What the service handlers share; owned by LetheServer, outliving every
// call.
#ifndef LETHE_SERVER_DEPS_H_
#define LETHE_SERVER_DEPS_H_

#include <cstdint>
#include <functional>
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

struct Deps {
  storage::ErasureStore* erasures;
  storage::DatasetStore* datasets;
  storage::ModelStore* models;
  Authenticator* auth;
  Executor* executor;
  ChangeHub* changes;
  std::string server_secret;
  Limits limits;
  // Never null. Lines name requests by id, never by subject.
  const observability::Logger* logger = nullptr;
};

// Runs `work` on the executor and finishes the unary call with its status.
// `work` gets the call's AuthMetadata, copied here on the gRPC thread: code
// on the executor never reads the context (see auth.h).
inline grpc::ServerUnaryReactor* Offload(
    grpc::CallbackServerContext* ctx, Executor* executor,
    std::function<absl::Status(const AuthMetadata&)> work) {
  auto* reactor = ctx->DefaultReactor();
  executor->Submit(
      [reactor, md = AuthMetadata::From(*ctx), work = std::move(work)] {
        reactor->Finish(ToGrpc(work(md)));
      });
  return reactor;
}

}  // namespace lethe::server

#endif  // LETHE_SERVER_DEPS_H_

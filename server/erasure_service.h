// ErasureService handlers (proto/lethe/v1/erasure.proto): thin adapters
// from the API to storage::ErasureStore.
#ifndef LETHE_SERVER_ERASURE_SERVICE_H_
#define LETHE_SERVER_ERASURE_SERVICE_H_

#include "lethe/v1/erasure.grpc.pb.h"
#include "server/deps.h"

namespace lethe::server {

// Validates a submission and maps it to storage parameters (the subject id
// is keyed and committed here, never passed on). The commitment's salt is
// the request's subject_salt when it carries one (then bound into the body
// hash, so that a replay with another salt is ALREADY_EXISTS), else
// `server_salt`, a fresh one the server drew. Exposed for unit tests.
absl::StatusOr<storage::SubmitParams> PrepareSubmission(
    const v1::SubmitErasureRequest& req, const std::string& client_key_id,
    const std::string& server_secret, const std::string& server_salt);

class ErasureServiceImpl final : public v1::ErasureService::CallbackService {
 public:
  explicit ErasureServiceImpl(const Deps* deps) : deps_(deps) {}

  grpc::ServerUnaryReactor* SubmitErasure(
      grpc::CallbackServerContext* ctx, const v1::SubmitErasureRequest* req,
      v1::SubmitErasureResponse* resp) override;
  grpc::ServerUnaryReactor* GetErasure(grpc::CallbackServerContext* ctx,
                                       const v1::GetErasureRequest* req,
                                       v1::Erasure* resp) override;
  grpc::ServerUnaryReactor* ListErasures(
      grpc::CallbackServerContext* ctx, const v1::ListErasuresRequest* req,
      v1::ListErasuresResponse* resp) override;
  grpc::ServerUnaryReactor* CancelErasure(grpc::CallbackServerContext* ctx,
                                          const v1::CancelErasureRequest* req,
                                          v1::Erasure* resp) override;
  grpc::ServerWriteReactor<v1::ErasureEvent>* WatchErasure(
      grpc::CallbackServerContext* ctx,
      const v1::WatchErasureRequest* req) override;

 private:
  // Validates an authorised submission and hands it to the store, whose
  // finisher thread completes the call. Never blocks.
  void StartSubmit(grpc::ServerUnaryReactor* reactor,
                   absl::StatusOr<Principal> principal,
                   const v1::SubmitErasureRequest* req,
                   v1::SubmitErasureResponse* resp);

  const Deps* deps_;
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_ERASURE_SERVICE_H_

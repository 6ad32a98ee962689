// ModelRegistry handlers (proto/lethe/v1/model.proto).
#ifndef LETHE_SERVER_MODEL_SERVICE_H_
#define LETHE_SERVER_MODEL_SERVICE_H_

#include "lethe/v1/model.grpc.pb.h"
#include "server/deps.h"

namespace lethe::server {

// Checks registration metadata against the documented ranges. Exposed for
// unit tests.
absl::Status ValidateModelMetadata(const v1::ModelMetadata& m);

class ModelRegistryImpl final : public v1::ModelRegistry::CallbackService {
 public:
  explicit ModelRegistryImpl(const Deps* deps) : deps_(deps) {}

  grpc::ServerReadReactor<v1::RegisterModelRequest>* RegisterModel(
      grpc::CallbackServerContext* ctx, v1::Model* resp) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* ctx,
                                     const v1::GetModelRequest* req,
                                     v1::Model* resp) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx,
                                       const v1::ListModelsRequest* req,
                                       v1::ListModelsResponse* resp) override;
  grpc::ServerUnaryReactor* ListModelVersions(
      grpc::CallbackServerContext* ctx, const v1::ListModelVersionsRequest* req,
      v1::ListModelVersionsResponse* resp) override;
  grpc::ServerWriteReactor<v1::DownloadModelVersionResponse>*
  DownloadModelVersion(grpc::CallbackServerContext* ctx,
                       const v1::DownloadModelVersionRequest* req) override;

 private:
  const Deps* deps_;
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_MODEL_SERVICE_H_

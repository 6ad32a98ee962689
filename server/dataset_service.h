// DatasetService handlers (proto/lethe/v1/dataset.proto).
#ifndef LETHE_SERVER_DATASET_SERVICE_H_
#define LETHE_SERVER_DATASET_SERVICE_H_

#include "lethe/v1/dataset.grpc.pb.h"
#include "server/deps.h"

namespace lethe::server {

class DatasetServiceImpl final : public v1::DatasetService::CallbackService {
 public:
  explicit DatasetServiceImpl(const Deps* deps) : deps_(deps) {}

  grpc::ServerUnaryReactor* CreateDataset(grpc::CallbackServerContext* ctx,
                                          const v1::CreateDatasetRequest* req,
                                          v1::Dataset* resp) override;
  grpc::ServerReadReactor<v1::UploadRecordsRequest>* UploadRecords(
      grpc::CallbackServerContext* ctx,
      v1::UploadRecordsResponse* resp) override;
  grpc::ServerUnaryReactor* GetDataset(grpc::CallbackServerContext* ctx,
                                       const v1::GetDatasetRequest* req,
                                       v1::Dataset* resp) override;
  grpc::ServerUnaryReactor* ListDatasets(
      grpc::CallbackServerContext* ctx, const v1::ListDatasetsRequest* req,
      v1::ListDatasetsResponse* resp) override;

 private:
  const Deps* deps_;
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_DATASET_SERVICE_H_

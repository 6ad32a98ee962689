// absl::Status -> grpc::Status, code for code (the numeric values agree).
#ifndef LETHE_SERVER_GRPC_STATUS_H_
#define LETHE_SERVER_GRPC_STATUS_H_

#include <string>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace lethe::server {

inline grpc::Status ToGrpc(const absl::Status& st) {
  if (st.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()),
                      std::string(st.message()));
}

}  // namespace lethe::server

#endif  // LETHE_SERVER_GRPC_STATUS_H_

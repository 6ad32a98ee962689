// absl::Status -> grpc::Status, code for code (the numeric values agree).
#ifndef LETHE_SERVER_GRPC_STATUS_H_
#define LETHE_SERVER_GRPC_STATUS_H_

#include <string>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "observability/log.h"
#include "storage/reachability.h"

namespace lethe::server {

// The answer carries the status's message only: a storage error's detail
// (storage/reachability.h: SQL and libpq text, which names tables, columns,
// values and hosts) never reaches a client (issue 17, item 11). With `log`,
// the server's own failures (INTERNAL, UNKNOWN, DATA_LOSS) are logged with
// their detail.
inline grpc::Status ToGrpc(const absl::Status& st,
                           const observability::Logger* log = nullptr) {
  if (st.ok()) return grpc::Status::OK;
  if (log != nullptr &&
      (absl::IsInternal(st) || absl::IsUnknown(st) || absl::IsDataLoss(st))) {
    log->Error({}, "call failed", {{"error", storage::ErrorDetail(st)}});
  }
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()),
                      std::string(st.message()));
}

}  // namespace lethe::server

#endif  // LETHE_SERVER_GRPC_STATUS_H_

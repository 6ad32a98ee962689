// How a lethectl command ends: an exit code and, on failure, one line for
// stderr. The exit codes are part of lethectl's interface (docs/cli.md):
//
//   0  success
//   1  `watch` saw the request end FAILED or CANCELLED; `verify` found a
//      check that does not hold; `health` got an answer other than SERVING
//   2  usage error: unknown command or flag, missing or malformed value
//   3  the RPC failed (the line names the gRPC status code)
//   4  local failure: a file could not be read or written, or a download
//      failed verification
//
// Helpers below return absl::Status; FromStatus maps INVALID_ARGUMENT to a
// usage error and every other code to a local failure.
#ifndef LETHE_LETHECTL_OUTCOME_H_
#define LETHE_LETHECTL_OUTCOME_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace lethe::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitWatchFailed = 1,
  kExitVerifyFailed = 1,
  kExitNotServing = 1,
  kExitUsage = 2,
  kExitRpc = 3,
  kExitLocal = 4,
};

struct Outcome {
  int exit_code = kExitOk;
  // Printed as "lethectl: <message>" when not empty.
  std::string message;

  static Outcome Ok() { return {}; }
  static Outcome Usage(absl::string_view message);
  static Outcome Rpc(const grpc::Status& status);
  static Outcome Local(absl::string_view message);
  static Outcome FromStatus(const absl::Status& status);
};

// "NOT_FOUND", "UNAVAILABLE", ... as grpc/doc/statuscodes.md spells them.
absl::string_view StatusCodeName(grpc::StatusCode code);

}  // namespace lethe::cli

#endif  // LETHE_LETHECTL_OUTCOME_H_

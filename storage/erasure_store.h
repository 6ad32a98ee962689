// ErasureStore: durable intake of erasure requests and the per-model tasks
// that workers drain.
//
// Submit is idempotent on (client key id, idempotency key): concurrent
// identical submissions create exactly one request (the UNIQUE constraint
// decides, ON CONFLICT makes the losers read the winner's row). Thread-safe.
#ifndef LETHE_STORAGE_ERASURE_STORE_H_
#define LETHE_STORAGE_ERASURE_STORE_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/database.h"
#include "storage/types.h"

namespace lethe::storage {

struct SubmitParams {
  std::string client_key_id;    // the API key that submits
  std::string idempotency_key;
  std::string body_sha256;      // canonical body hash (32 bytes)
  std::string subject_key;      // HMAC of the subject id (32 bytes)
  std::string subject_commitment;  // 32 bytes
  std::string legal_ground;
  std::string legal_reference;
  std::vector<std::string> scope_model_ids;  // validated UUIDs, sorted
};

struct SubmitResult {
  ErasureRow erasure;
  bool replayed = false;
};

struct ErasureFilter {
  std::string state;     // "" = any
  std::string model_id;  // "" = any
  int64_t created_after_us = 0;   // 0 = unbounded
  int64_t created_before_us = 0;  // 0 = unbounded
};

struct ErasurePage {
  std::vector<ErasureRow> rows;
  std::optional<PageCursor> next;
};

class ErasureStore {
 public:
  explicit ErasureStore(Database* db) : db_(db) {}

  // Records the request and, in the same transaction, one QUEUED task per
  // model (in scope) whose dataset holds records with the subject key. With
  // no such model the request is NOTHING_TO_ERASE at once. Errors:
  // NOT_FOUND (a scoped model does not exist), ALREADY_EXISTS (idempotency
  // key reused with another body), UNAVAILABLE.
  absl::StatusOr<SubmitResult> Submit(const SubmitParams& params);

  // NOT_FOUND if absent.
  absl::StatusOr<ErasureRow> Get(const std::string& id);

  // Newest first.
  absl::StatusOr<ErasurePage> List(const ErasureFilter& filter,
                                   const Page& page);

  // Cancels a request none of whose tasks was ever claimed.
  // FAILED_PRECONDITION once work started or the request is terminal;
  // cancelling a CANCELLED request returns it unchanged.
  absl::StatusOr<ErasureRow> Cancel(const std::string& id,
                                    const std::string& actor);

 private:
  Database* db_;  // not owned
};

bool IsTerminalErasureState(std::string_view state);

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_ERASURE_STORE_H_

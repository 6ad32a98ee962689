// ErasureStore: durable intake of erasure requests and the per-model tasks
// that workers drain.
//
// Submit is idempotent on (client key id, idempotency key): concurrent
// identical submissions create exactly one request (the UNIQUE constraint
// decides, ON CONFLICT makes the losers read the winner's row). Thread-safe.
//
// Group commit: concurrent Submit calls are gathered into batches, and one
// transaction writes a whole batch with one set-based statement (requests,
// tasks and audit entries together), so a burst of submissions costs one
// WAL flush and a handful of round trips instead of one commit and ~8 round
// trips each. A batch forms while the previous one runs (no timer): a lone
// caller goes straight to the database. Each caller still gets its own
// result, as if it had run alone: a request that fails (NOT_FOUND,
// ALREADY_EXISTS) writes nothing and does not affect the others, and every
// request's effects are committed together in one transaction. Duplicates
// of one key inside a batch run one after the other, so the first creates
// the request and the rest replay it (or fail with ALREADY_EXISTS).
#ifndef LETHE_STORAGE_ERASURE_STORE_H_
#define LETHE_STORAGE_ERASURE_STORE_H_

#include <deque>
#include <mutex>
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

struct ErasureStoreOptions {
  // Most requests written by one transaction.
  int max_batch = 64;
  // Batches in flight at once (each on its own pooled connection). More
  // than one lets a batch form and run while another waits for its commit.
  int max_concurrent_batches = 2;
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
  explicit ErasureStore(Database* db, ErasureStoreOptions options = {});
  ~ErasureStore();
  ErasureStore(const ErasureStore&) = delete;
  ErasureStore& operator=(const ErasureStore&) = delete;

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
  // cancelling a CANCELLED request returns it unchanged. With `only_key`
  // set, PERMISSION_DENIED (and nothing changes) unless that API key
  // submitted the request.
  absl::StatusOr<ErasureRow> Cancel(const std::string& id,
                                    const std::string& actor,
                                    const std::string& only_key = "");

 private:
  struct Waiter;  // one Submit call waiting for its batch

  // Writes `batch` in one transaction and stores each waiter's result.
  // Should the transaction fail as a whole for a reason other than the
  // database being unreachable, each request is retried alone, so that the
  // error reaches only the request that caused it.
  void RunBatch(const std::vector<Waiter*>& batch);

  Database* db_;  // not owned
  const ErasureStoreOptions options_;
  std::mutex mu_;
  std::deque<Waiter*> queue_;  // guarded by mu_; callers not yet in a batch
  int running_batches_ = 0;    // guarded by mu_
};

bool IsTerminalErasureState(std::string_view state);

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_ERASURE_STORE_H_

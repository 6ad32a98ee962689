// ErasureStore: durable intake of erasure requests and the per-model tasks
// that workers drain.
//
// Submit is idempotent on (client key id, idempotency key): concurrent
// identical submissions create exactly one request (the UNIQUE constraint
// decides, ON CONFLICT makes the losers read the winner's row). Thread-safe.
//
// Each submission gets its own result, as if it had run alone: a request
// that fails (NOT_FOUND, ALREADY_EXISTS) writes nothing, and a request's
// effects (request, tasks, audit entries, records deleted at intake) are
// committed together. The PostgreSQL store (storage/postgres/) writes
// submissions in group commits; ErasureStoreOptions tunes that.
#ifndef LETHE_STORAGE_ERASURE_STORE_H_
#define LETHE_STORAGE_ERASURE_STORE_H_

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/types.h"

namespace lethe::storage {

struct SubmitParams {
  std::string client_key_id;  // the API key that submits
  std::string idempotency_key;
  // HMAC-SHA256 of the canonical body under the server secret (32 bytes):
  // keyed, so that a subject key found elsewhere (another dataset's records)
  // cannot be matched against the body of a completed request whose own
  // subject key was cleared.
  std::string body_sha256;
  // The same body's plain SHA-256, as requests stored before 2026-12-06
  // hold it: a replay of such a request still matches. Never stored.
  std::string legacy_body_sha256;
  std::string subject_key;         // HMAC of the subject id (32 bytes)
  std::string subject_commitment;  // 32 bytes
  std::string legal_ground;
  std::string legal_reference;
  std::vector<std::string> scope_model_ids;  // validated UUIDs, sorted
  // The submitting key's datasets (ApiKeyRow::dataset_ids; empty: all):
  // tasks go only to models of these datasets, orphaned records are
  // deleted only there, and a scoped model outside them is NOT_FOUND, as
  // if it did not exist. Not part of the body: it is the key's, not the
  // request's.
  std::vector<std::string> scope_dataset_ids;
};

struct SubmitResult {
  ErasureRow erasure;
  bool replayed = false;
};

struct ErasureStoreOptions {
  // Most requests written by one transaction.
  int max_batch = 64;
  // Batches in the database at once, each written by its own thread on its
  // own pooled connection. With one, the submissions that arrive while a
  // batch runs and commits all go into the next batch; more overlap
  // batches at the price of smaller ones (more commits per request).
  int max_concurrent_batches = 1;
  // Threads that run the callbacks of written batches, so that a writer
  // goes straight on to the next batch.
  int finisher_threads = 2;
  // Called by a writer after each batch with its size and the seconds its
  // statement and commit took (metrics); must be thread-safe. May be empty.
  std::function<void(size_t submissions, double seconds)> on_batch;
};

struct ErasureFilter {
  std::string state;              // "" = any
  std::string model_id;           // "" = any
  int64_t created_after_us = 0;   // 0 = unbounded
  int64_t created_before_us = 0;  // 0 = unbounded
};

struct ErasurePage {
  std::vector<ErasureRow> rows;
  std::optional<PageCursor> next;
};

class ErasureStore {
 public:
  virtual ~ErasureStore() = default;

  // Records the request and, in the same transaction, one QUEUED task per
  // model (in scope) whose dataset holds records with the subject key (an
  // INVALID model's task is SKIPPED by the workers' housekeeping). An
  // unscoped request also deletes, at once, the subject's records in
  // datasets that no model uses. With no task the request is
  // NOTHING_TO_ERASE at once (its reason counts the records deleted). Errors:
  // NOT_FOUND (a scoped model does not exist, or is not in
  // scope_dataset_ids), ALREADY_EXISTS (idempotency
  // key reused with another body), UNAVAILABLE.
  virtual absl::StatusOr<SubmitResult> Submit(const SubmitParams& params) = 0;

  using SubmitCallback = std::function<void(absl::StatusOr<SubmitResult>)>;
  // As Submit, without blocking: `done` runs exactly once, on a thread of
  // the store's (or the caller's), once the submission committed or failed.
  // Keep it short; it may call SubmitAsync again. Once the store is being
  // destroyed, `done` gets UNAVAILABLE at once, on the calling thread.
  virtual void SubmitAsync(SubmitParams params, SubmitCallback done) = 0;

  // NOT_FOUND if absent.
  virtual absl::StatusOr<ErasureRow> Get(const std::string& id) = 0;

  // Newest first.
  virtual absl::StatusOr<ErasurePage> List(const ErasureFilter& filter,
                                           const Page& page) = 0;

  // Cancels a request none of whose tasks was ever claimed.
  // FAILED_PRECONDITION once work started or the request is terminal;
  // cancelling a CANCELLED request returns it unchanged. With `only_key`
  // set, PERMISSION_DENIED (and nothing changes) unless that API key
  // submitted the request.
  virtual absl::StatusOr<ErasureRow> Cancel(const std::string& id,
                                            const std::string& actor,
                                            const std::string& only_key) = 0;
};

bool IsTerminalErasureState(std::string_view state);

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_ERASURE_STORE_H_

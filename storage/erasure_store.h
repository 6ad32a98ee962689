// ErasureStore: durable intake of erasure requests and the per-model tasks
// that workers drain.
//
// Submit is idempotent on (client key id, idempotency key): concurrent
// identical submissions create exactly one request (the UNIQUE constraint
// decides, ON CONFLICT makes the losers read the winner's row). Thread-safe.
//
// Group commit: submissions are queued, and the store's own threads write
// them in batches (`max_concurrent_batches` writers): one set-based
// statement per batch (requests, tasks and audit entries together), so a
// burst of submissions costs one WAL flush and one round trip instead of
// one commit and ~8 round trips each. A batch forms while the previous one
// runs (no timer): a lone submission goes straight to the database. A batch
// without scoped models or repeated keys is that one statement, committing
// itself; any other batch runs in one transaction. SubmitAsync never
// blocks: the gRPC handler hands the submission over and a finisher thread
// completes the call once its batch committed, so no thread waits per
// request. Each submission still gets its own result, as if it had run
// alone: a request that fails (NOT_FOUND, ALREADY_EXISTS) writes nothing
// and does not affect the others, and every request's effects are
// committed together. Duplicates of one key inside a batch run one after
// the other, so the first creates the request and the rest replay it (or
// fail with ALREADY_EXISTS).
#ifndef LETHE_STORAGE_ERASURE_STORE_H_
#define LETHE_STORAGE_ERASURE_STORE_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
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
  // model (in scope) whose dataset holds records with the subject key (an
  // INVALID model's task is SKIPPED by the workers' housekeeping). An
  // unscoped request also deletes, at once, the subject's records in
  // datasets that no model uses. With no task the request is
  // NOTHING_TO_ERASE at once (its reason counts the records deleted). Errors:
  // NOT_FOUND (a scoped model does not exist), ALREADY_EXISTS (idempotency
  // key reused with another body), UNAVAILABLE.
  absl::StatusOr<SubmitResult> Submit(const SubmitParams& params);

  using SubmitCallback = std::function<void(absl::StatusOr<SubmitResult>)>;
  // As Submit, without blocking: `done` runs exactly once, on one of the
  // store's finisher threads, once the batch holding the submission
  // committed or failed. Keep it short (it delays the callbacks of the
  // batches behind it); it may call SubmitAsync again. Once the destructor
  // started, `done` gets UNAVAILABLE at once, on the calling thread.
  void SubmitAsync(SubmitParams params, SubmitCallback done);

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
  struct Waiter;  // one queued submission

  // Takes batches off the queue and writes them, until the store is
  // destroyed and the queue is empty.
  void WriterLoop();
  // Runs the callbacks of written batches.
  void FinisherLoop();
  // Writes `batch` in one transaction and stores each waiter's result.
  // Should the transaction fail as a whole for a reason other than the
  // database being unreachable, each request is retried alone, so that the
  // error reaches only the request that caused it.
  void RunBatch(const std::vector<Waiter*>& batch);

  Database* db_;  // not owned
  const ErasureStoreOptions options_;
  std::mutex mu_;
  std::condition_variable queued_;    // queue_ gained an entry, or stopping_
  std::condition_variable finished_;  // written_ gained a batch, or stopping
  std::deque<Waiter*> queue_;         // guarded by mu_; not yet in a batch
  std::deque<std::vector<Waiter*>> written_;  // guarded by mu_
  bool stopping_ = false;                     // guarded by mu_
  bool writers_done_ = false;                 // guarded by mu_
  std::vector<std::thread> writers_;
  std::vector<std::thread> finishers_;
};

bool IsTerminalErasureState(std::string_view state);

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_ERASURE_STORE_H_

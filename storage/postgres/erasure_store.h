// PgErasureStore: the ErasureStore (storage/erasure_store.h) in PostgreSQL.
//
// Concurrent identical submissions create exactly one request: the UNIQUE
// constraint on (client key id, idempotency key) decides, ON CONFLICT makes
// the losers read the winner's row.
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
// request. Duplicates of one key inside a batch run one after the other, so
// the first creates the request and the rest replay it (or fail with
// ALREADY_EXISTS).
#ifndef LETHE_STORAGE_POSTGRES_ERASURE_STORE_H_
#define LETHE_STORAGE_POSTGRES_ERASURE_STORE_H_

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "storage/erasure_store.h"
#include "storage/postgres/database.h"

namespace lethe::storage {

class PgErasureStore final : public ErasureStore {
 public:
  explicit PgErasureStore(Database* db, ErasureStoreOptions options = {});
  // Writes what is queued, then answers later submissions UNAVAILABLE.
  ~PgErasureStore() override;
  PgErasureStore(const PgErasureStore&) = delete;
  PgErasureStore& operator=(const PgErasureStore&) = delete;

  absl::StatusOr<SubmitResult> Submit(const SubmitParams& params) override;
  // `done` runs on one of the store's finisher threads; keep it short (it
  // delays the callbacks of the batches behind it).
  void SubmitAsync(SubmitParams params, SubmitCallback done) override;
  absl::StatusOr<ErasureRow> Get(const std::string& id) override;
  absl::StatusOr<ErasurePage> List(const ErasureFilter& filter,
                                   const Page& page) override;
  absl::StatusOr<ErasureRow> Cancel(const std::string& id,
                                    const std::string& actor,
                                    const std::string& only_key) override;

 private:
  struct Waiter;  // one queued submission

  // Takes batches off the queue and writes them, until the store is
  // destroyed and the queue is empty.
  void WriterLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Runs the callbacks of written batches.
  void FinisherLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Writes `batch` in one transaction and stores each waiter's result.
  // Should the transaction fail as a whole for a reason other than the
  // database being unreachable, each request is retried alone, so that the
  // error reaches only the request that caused it.
  void RunBatch(const std::vector<Waiter*>& batch) ABSL_LOCKS_EXCLUDED(mu_);

  Database* db_;  // not owned
  const ErasureStoreOptions options_;
  base::Mutex mu_;
  base::CondVar queued_;    // queue_ gained an entry, or stopping_
  base::CondVar finished_;  // written_ gained a batch, or writers_done_
  std::deque<Waiter*> queue_ ABSL_GUARDED_BY(mu_);  // not yet in a batch
  std::deque<std::vector<Waiter*>> written_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool writers_done_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> writers_;
  std::vector<std::thread> finishers_;
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_POSTGRES_ERASURE_STORE_H_

// Database: a small pool of PostgreSQL connections (libpqxx) and the one
// place where libpqxx exceptions become absl::Status.
//
// Thread safety: Database is safe to share between threads; each
// transaction runs on a connection that no other thread uses meanwhile.
// A broken connection is dropped and reopened on the next use, so a server
// or worker survives a PostgreSQL restart (calls fail with UNAVAILABLE
// while it is down).
#ifndef LETHE_STORAGE_POSTGRES_DATABASE_H_
#define LETHE_STORAGE_POSTGRES_DATABASE_H_

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lethe::storage {

using Txn = pqxx::work;

struct DatabaseOptions {
  // libpq connection string or URL.
  std::string url;
  // Connections kept open at most.
  int pool_size = 8;
  // Seconds to wait for a free connection before RESOURCE_EXHAUSTED.
  int acquire_timeout_seconds = 30;
};

class Database {
 public:
  explicit Database(DatabaseOptions options);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs `fn` in one READ COMMITTED transaction and commits it when `fn`
  // returns OK; otherwise (or on an exception) rolls back. libpqxx errors
  // map to: broken connection -> UNAVAILABLE; unique violation ->
  // ALREADY_EXISTS; serialization failure / deadlock -> ABORTED (retried
  // here up to 3 times); other SQL errors -> INTERNAL. A connection lost
  // during COMMIT is UNAVAILABLE with the outcome unknown: callers make
  // their writes idempotent.
  absl::Status Transact(const std::function<absl::Status(Txn&)>& fn);

  // Same, for work that produces a value.
  template <typename T>
  absl::StatusOr<T> TransactValue(
      const std::function<absl::StatusOr<T>(Txn&)>& fn) {
    absl::StatusOr<T> out = absl::InternalError("transaction did not run");
    absl::Status st = Transact([&](Txn& txn) -> absl::Status {
      out = fn(txn);
      return out.status();
    });
    if (!st.ok()) return st;
    return out;
  }

  // Runs `fn` outside a transaction block: each statement commits on its
  // own when it completes (one round trip, no BEGIN or COMMIT). For work
  // that is a single statement, which PostgreSQL applies atomically. Errors
  // and retries as Transact; a failed statement leaves nothing behind, but
  // statements before it stay committed.
  absl::Status Autocommit(
      const std::function<absl::Status(pqxx::nontransaction&)>& fn);

  // Opens a dedicated connection outside the pool (for LISTEN, or for
  // session-level advisory locks). Errors as above.
  absl::StatusOr<std::unique_ptr<pqxx::connection>> OpenDedicated() const;

  // SELECT 1 on a pooled connection: OK when PostgreSQL answers.
  absl::Status Ping();

  const std::string& url() const { return options_.url; }

 private:
  // Transact and Autocommit: `fn` in a fresh Tx on a pooled connection.
  template <typename Tx, typename Fn>
  absl::Status Run(const Fn& fn);
  std::unique_ptr<pqxx::connection> Acquire(absl::Status* status);
  void Release(std::unique_ptr<pqxx::connection> conn);

  const DatabaseOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;  // guarded by mu_
  int open_ = 0;                                         // guarded by mu_
};

// Maps a libpqxx / std exception (call from a catch block) to a status.
absl::Status StatusFromCurrentException();

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_POSTGRES_DATABASE_H_

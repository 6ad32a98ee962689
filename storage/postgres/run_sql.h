// RunSql: one-off SQL on a connection of its own, for tools and tests
// (creating and dropping databases, setting up or inspecting rows), so that
// they need no database API of their own. SqlSession: the same over a
// connection that stays open, for tests that hold a transaction or a lock
// across calls.
#ifndef LETHE_STORAGE_POSTGRES_RUN_SQL_H_
#define LETHE_STORAGE_POSTGRES_RUN_SQL_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lethe::storage {

// A result row: each column as text, nullopt for NULL.
using SqlRow = std::vector<std::optional<std::string>>;

// Runs `sql` (one or more statements; no parameters) outside a transaction
// block on a new connection to `url`, and returns the rows of the last
// statement. Errors as Database::Transact maps them (UNAVAILABLE when the
// server cannot be reached, ALREADY_EXISTS for a unique violation,
// INTERNAL for other SQL errors, with PostgreSQL's message).
absl::StatusOr<std::vector<SqlRow>> RunSql(const std::string& url,
                                           const std::string& sql);

// One connection, open until destroyed. Exec runs `sql` as RunSql does
// (outside any transaction the session did not open itself): `BEGIN`, then
// statements, then `COMMIT` or `ROLLBACK` hold a transaction across calls;
// destroying the session closes the connection, which rolls back whatever
// it still holds. Not thread-safe.
class SqlSession {
 public:
  // UNAVAILABLE when the server cannot be reached.
  static absl::StatusOr<std::unique_ptr<SqlSession>> Open(
      const std::string& url);
  ~SqlSession();
  SqlSession(const SqlSession&) = delete;
  SqlSession& operator=(const SqlSession&) = delete;

  absl::StatusOr<std::vector<SqlRow>> Exec(const std::string& sql);

 private:
  struct Impl;
  explicit SqlSession(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_POSTGRES_RUN_SQL_H_

// RunSql: one-off SQL on a connection of its own, for tools and tests
// (creating and dropping databases, setting up or inspecting rows), so that
// they need no database API of their own.
#ifndef LETHE_STORAGE_POSTGRES_RUN_SQL_H_
#define LETHE_STORAGE_POSTGRES_RUN_SQL_H_

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

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_POSTGRES_RUN_SQL_H_

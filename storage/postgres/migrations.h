// Versioned schema migrations (storage/postgres/migrations/NNNN_name.sql,
// embedded at build time). Migrate() applies the missing ones in order, each in
// its own transaction, under a PostgreSQL advisory lock so that several server
// replicas starting at once apply each migration exactly once. Applied
// versions are recorded in `schema_migrations`.
#ifndef LETHE_STORAGE_POSTGRES_MIGRATIONS_H_
#define LETHE_STORAGE_POSTGRES_MIGRATIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/postgres/database.h"

namespace lethe::storage {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

// The migrations this build knows, ascending by version.
const std::vector<Migration>& AllMigrations();

struct MigrationResult {
  int from_version = 0;
  int to_version = 0;
  std::vector<std::string> applied;  // names, in order
};

// Brings the schema to the newest version. FAILED_PRECONDITION when the
// database is at a version newer than this build knows.
absl::StatusOr<MigrationResult> Migrate(Database& db);

// The applied schema version (0 for an empty database).
absl::StatusOr<int> SchemaVersion(Database& db);

// For processes that do not migrate (--migrate-on-start false, the runtime
// role): OK when the schema has every migration this build knows (or is
// newer: a rollout runs the migration first); FAILED_PRECONDITION naming
// the first pending one otherwise; UNAVAILABLE when unreachable.
absl::Status CheckSchemaCurrent(Database& db);

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_POSTGRES_MIGRATIONS_H_

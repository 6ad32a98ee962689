#include "storage/postgres/migrations.h"

#include <pqxx/except>
#include <pqxx/nontransaction>

#include "absl/strings/str_cat.h"
#include "storage/migrations_sql.h"

namespace lethe::storage {
namespace {

// Arbitrary but fixed: "lethe" in ASCII, for pg_advisory_lock.
constexpr int64_t kMigrationLockId = 0x6c65746865;

constexpr const char* kCreateVersionTable = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
))sql";

int CurrentVersion(pqxx::transaction_base& txn) {
  auto row =
      txn.exec1("SELECT coalesce(max(version), 0) FROM schema_migrations");
  return row[0].as<int>();
}

}  // namespace

const std::vector<Migration>& AllMigrations() {
  static const auto* migrations = [] {
    auto* out = new std::vector<Migration>();
    for (const auto& m : kEmbeddedMigrations) {
      out->push_back(Migration{m.version, m.name, m.sql});
    }
    return out;
  }();
  return *migrations;
}

absl::StatusOr<int> SchemaVersion(Database& db) {
  return db.TransactValue<int>([](Txn& txn) -> absl::StatusOr<int> {
    auto exists =
        txn.exec1("SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (!exists[0].as<bool>()) return 0;
    return CurrentVersion(txn);
  });
}

absl::Status CheckSchemaCurrent(Database& db) {
  absl::StatusOr<int> version = SchemaVersion(db);
  if (!version.ok()) return version.status();
  for (const Migration& m : AllMigrations()) {
    if (m.version > *version) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database schema is at version ", *version, "; migration ", m.version,
          " (", m.name,
          ") is pending: run `lethe migrate` as the schema owner first"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<MigrationResult> Migrate(Database& db) {
  auto conn_or = db.OpenDedicated();
  if (!conn_or.ok()) return conn_or.status();
  auto& conn = **conn_or;
  MigrationResult result;
  try {
    {
      pqxx::nontransaction session(conn);
      session.exec(
          absl::StrCat("SELECT pg_advisory_lock(", kMigrationLockId, ")"));
      // Only when missing: the runtime role (migration 6) may not create
      // anything, not even IF NOT EXISTS, yet finds nothing to do here.
      if (!session
               .exec1("SELECT to_regclass('schema_migrations') IS NOT NULL")[0]
               .as<bool>()) {
        session.exec(kCreateVersionTable);
      }
    }
    {
      pqxx::work txn(conn);
      result.from_version = CurrentVersion(txn);
      txn.commit();
    }
    result.to_version = result.from_version;
    const auto& all = AllMigrations();
    const int newest = all.empty() ? 0 : all.back().version;
    if (result.from_version > newest) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database schema is at version ", result.from_version,
          " but this build knows only up to ", newest, "; run a newer lethe"));
    }
    for (const Migration& m : all) {
      if (m.version <= result.from_version) continue;
      pqxx::work txn(conn);
      try {
        txn.exec(m.sql);
      } catch (const pqxx::insufficient_privilege& e) {
        return absl::PermissionDeniedError(absl::StrCat(
            "schema migration ", m.version, " (", m.name,
            ") needs the schema owner: run `lethe migrate` with the owner's "
            "database URL (this role may only read and write; "
            "docs/operations.md, \"Database roles\"): ",
            e.what()));
      }
      txn.exec_params(
          "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
          m.version, m.name);
      txn.commit();
      result.to_version = m.version;
      result.applied.push_back(m.name);
    }
    pqxx::nontransaction session(conn);
    session.exec(
        absl::StrCat("SELECT pg_advisory_unlock(", kMigrationLockId, ")"));
  } catch (...) {
    // The session-level lock dies with the connection.
    return StatusFromCurrentException();
  }
  return result;
}

}  // namespace lethe::storage

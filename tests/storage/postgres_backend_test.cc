// The backend contract (tests/memory/backend_contract.h) on PostgreSQL: the
// direct tests of the PostgreSQL stores and work queue (claims, fencing,
// lease expiry and rescue, publication, exclusions, certificates), each on
// a fresh scratch database. Time moves by shifting every stored deadline
// and creation time back (the database's now() cannot be moved).
#include <cstdio>
#include <memory>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/binarystring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/hash.h"
#include "storage/postgres/artifact_store.h"
#include "storage/postgres/backend.h"
#include "storage/postgres/migrations.h"
#include "storage/postgres/run_sql.h"
#include "storage/reachability.h"
#include "tests/memory/backend_contract.h"
#include "tests/support/scratch_database.h"

namespace lethe::storage::testing {
namespace {

using lethe::testing::ScratchDatabase;

// The databases of the backends handed out, dropped at exit, and the
// latest backend, whose clock `Advance` moves.
std::vector<std::unique_ptr<ScratchDatabase>>& Databases() {
  static auto* databases = new std::vector<std::unique_ptr<ScratchDatabase>>;
  return *databases;
}
PostgresBackend* latest = nullptr;

std::unique_ptr<Backend> MakePostgres() {
  auto scratch = ScratchDatabase::Create("lethe_contract");
  EXPECT_TRUE(scratch.ok()) << scratch.status();
  if (!scratch.ok()) return nullptr;
  Databases().push_back(std::make_unique<ScratchDatabase>(std::move(*scratch)));
  auto backend =
      OpenPostgres({.url = Databases().back()->url(), .pool_size = 4});
  absl::Status migrated = backend->Prepare(/*migrate=*/true);
  EXPECT_TRUE(migrated.ok()) << migrated;
  latest = backend.get();
  return backend;
}

// Every deadline and creation time the queue compares with now(), moved
// back by `by`: as if `by` had passed.
void ShiftTime(std::chrono::microseconds by) {
  const std::string shift =
      absl::StrCat("make_interval(secs => ", by.count() / 1e6, ")");
  absl::Status st = latest->database().Transact([&](Txn& txn) {
    txn.exec(absl::StrCat(
        "UPDATE erasure_tasks SET lease_expires_at = lease_expires_at - ",
        shift, ", not_before = not_before - ", shift,
        ", created_at = created_at - ", shift));
    txn.exec(
        absl::StrCat("UPDATE erasure_requests SET created_at = "
                     "created_at - ",
                     shift));
    txn.exec(
        absl::StrCat("UPDATE models SET lease_expires_at = lease_expires_at - ",
                     shift, ", job_not_before = job_not_before - ", shift));
    txn.exec(
        absl::StrCat("UPDATE model_versions SET delete_after = "
                     "delete_after - ",
                     shift));
    return absl::OkStatus();
  });
  ASSERT_TRUE(st.ok()) << st;
}

// Issue 17 item 9: the whole contract again as the runtime role, which owns
// nothing and may only SELECT and INSERT on the logs: everything the
// servers and workers do must work with its grants.
std::unique_ptr<Backend> MakePostgresAsRuntimeRole() {
  std::unique_ptr<Backend> owner = MakePostgres();
  if (owner == nullptr) return nullptr;
  auto url = lethe::testing::AsRuntimeRole(Databases().back()->url());
  EXPECT_TRUE(url.ok()) << url.status();
  if (!url.ok()) return nullptr;
  auto backend = OpenPostgres({.url = *url, .pool_size = 4});
  absl::Status prepared = backend->Prepare(/*migrate=*/true);
  EXPECT_TRUE(prepared.ok()) << prepared;  // nothing left to migrate
  latest = backend.get();
  return backend;
}

INSTANTIATE_TEST_SUITE_P(
    Postgres, BackendContractTest,
    ::testing::Values(BackendFactory{"postgres", MakePostgres, ShiftTime},
                      BackendFactory{"postgres_runtime_role",
                                     MakePostgresAsRuntimeRole, ShiftTime}),
    BackendFactoryName);

// What the runtime role may not do, and TRUNCATE refused even to the owner.
TEST(RuntimeRoleTest, CannotChangeTheLogsTheirTriggersOrTheSchema) {
  auto scratch = ScratchDatabase::Create("lethe_roles");
  ASSERT_TRUE(scratch.ok()) << scratch.status();
  auto owner = OpenPostgres({.url = scratch->url(), .pool_size = 2});
  ASSERT_TRUE(owner->Prepare(/*migrate=*/true).ok());
  auto runtime = lethe::testing::AsRuntimeRole(scratch->url());
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  ASSERT_TRUE(RunSql(*runtime,
                     "INSERT INTO audit_log (actor, action) VALUES ('t', 'x')")
                  .ok());
  EXPECT_EQ((*RunSql(*runtime, "SELECT current_user"))[0][0].value_or(""),
            "lethe_test_runtime");
  // Granting itself more is a warning without effect (no grant option):
  // the UPDATE below is still refused.
  (void)RunSql(*runtime, "GRANT UPDATE, TRUNCATE ON audit_log TO PUBLIC");
  for (const char* sql : {
           "UPDATE audit_log SET action = 'y'",
           "DELETE FROM audit_log",
           "TRUNCATE audit_log",
           "TRUNCATE certificate_log CASCADE",
           "DELETE FROM certificates",
           "UPDATE certificate_checkpoints SET note = ''",
           "DELETE FROM certificate_log_nodes",
           "ALTER TABLE audit_log DISABLE TRIGGER USER",
           "DROP TRIGGER audit_log_append_only ON audit_log",
           "CREATE TABLE shadow (x int)",
       }) {
    auto refused = RunSql(*runtime, sql);
    ASSERT_FALSE(refused.ok()) << sql;
    // PostgreSQL's text is the error's detail (for logs), not its message.
    const std::string detail = ErrorDetail(refused.status());
    EXPECT_TRUE(absl::StrContains(detail, "permission") ||
                absl::StrContains(detail, "owner"))
        << sql << ": " << refused.status();
  }
  // The owner may change the schema, but TRUNCATE of a log is refused by
  // its statement trigger, whoever asks.
  for (const char* log : {"audit_log", "certificate_log", "certificates",
                          "certificate_checkpoints", "certificate_log_head",
                          "certificate_log_nodes"}) {
    auto refused =
        RunSql(scratch->url(), absl::StrCat("TRUNCATE ", log, " CASCADE"));
    ASSERT_FALSE(refused.ok()) << log;
    EXPECT_TRUE(absl::StrContains(ErrorDetail(refused.status()), "append-only"))
        << refused.status();
  }
  EXPECT_EQ((*RunSql(scratch->url(), "SELECT count(*) FROM audit_log"))[0][0]
                .value_or(""),
            "1");
}

// A process that does not migrate refuses a schema with a migration
// pending; the runtime role cannot apply one and says who can.
TEST(RuntimeRoleTest, PendingMigrationsAreRefusedWithoutTheOwner) {
  auto scratch = ScratchDatabase::Create("lethe_pending");
  ASSERT_TRUE(scratch.ok()) << scratch.status();
  auto fresh = OpenPostgres({.url = scratch->url(), .pool_size = 2});
  absl::Status unmigrated = fresh->Prepare(/*migrate=*/false);
  EXPECT_EQ(unmigrated.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(unmigrated.message(), "migration 1"))
      << unmigrated;
  ASSERT_TRUE(fresh->Prepare(/*migrate=*/true).ok());
  EXPECT_TRUE(fresh->Prepare(/*migrate=*/false).ok());
  // As if the newest migration were new: the runtime role neither skips
  // nor runs it.
  const int newest = AllMigrations().back().version;
  ASSERT_TRUE(
      RunSql(scratch->url(), absl::StrCat("DELETE FROM schema_migrations WHERE "
                                          "version = ",
                                          newest))
          .ok());
  auto runtime = lethe::testing::AsRuntimeRole(scratch->url());
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  auto backend = OpenPostgres({.url = *runtime, .pool_size = 2});
  absl::Status checked = backend->Prepare(/*migrate=*/false);
  EXPECT_EQ(checked.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(
      absl::StrContains(checked.message(), absl::StrCat("migration ", newest)))
      << checked;
  absl::Status migrated = backend->Prepare(/*migrate=*/true);
  EXPECT_EQ(migrated.code(), absl::StatusCode::kPermissionDenied) << migrated;
  EXPECT_TRUE(absl::StrContains(migrated.message(), "schema owner"))
      << migrated;
}

// Bytes that are not all alike, so that a misplaced chunk shows.
std::string Weights(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<char>((i * 2654435761u) >> 11);
  }
  return out;
}

std::string ReadAllOf(ArtifactStore& store, Database& db,
                      const std::string& sha256, absl::Status* status) {
  auto reader = store.Open(db, sha256);
  if (!reader.ok()) {
    *status = reader.status();
    return "";
  }
  auto bytes = ReadWholeArtifact(**reader);
  *status = bytes.status();
  return bytes.ok() ? *bytes : "";
}

// Migration 9 moves artifacts kept inline (schema 8's artifacts.data) into
// 1 MiB chunks that read back as the same bytes.
TEST(ArtifactChunksTest, MigrationNineMovesInlineArtifactsIntoChunks) {
  auto scratch = ScratchDatabase::Create("lethe_chunks_migration");
  ASSERT_TRUE(scratch.ok()) << scratch.status();
  Database db({scratch->url(), 2, 10});
  ASSERT_TRUE(Migrate(db).ok());
  // Back to schema 8: its artifacts table, holding two artifacts inline,
  // and its records index.
  ASSERT_TRUE(RunSql(scratch->url(),
                     "DROP TABLE artifact_chunks; "
                     "ALTER TABLE artifacts ADD COLUMN data bytea; "
                     "ALTER TABLE artifacts ADD CHECK "
                     "((data IS NULL) <> (location IS NULL)); "
                     "DROP INDEX records_by_dataset_id; "
                     "CREATE INDEX records_by_dataset ON records "
                     "(dataset_id, split, id); "
                     "DELETE FROM schema_migrations WHERE version >= 9")
                  .ok());
  const std::string big = Weights(kArtifactChunkBytes * 2 + 17);
  const std::string small = "tiny model";
  ASSERT_TRUE(db.Transact([&](Txn& txn) {
                  for (const std::string* bytes : {&big, &small}) {
                    txn.exec_params(
                        "INSERT INTO artifacts (sha256, size_bytes, data) "
                        "VALUES ($1, $2, $3)",
                        pqxx::binarystring(Sha256(*bytes)),
                        static_cast<int64_t>(bytes->size()),
                        pqxx::binarystring(bytes->data(), bytes->size()));
                  }
                  return absl::OkStatus();
                }).ok());
  auto migrated = Migrate(db);
  ASSERT_TRUE(migrated.ok()) << migrated.status();
  EXPECT_EQ(migrated->to_version, 10);
  EXPECT_EQ(
      (*RunSql(scratch->url(), "SELECT count(*) FROM artifact_chunks"))[0][0]
          .value_or(""),
      "4");  // 3 + 1
  auto store = NewPostgresArtifactStore();
  for (const std::string* bytes : {&big, &small}) {
    absl::Status st;
    EXPECT_TRUE(ReadAllOf(*store, db, Sha256(*bytes), &st) == *bytes);
    EXPECT_TRUE(st.ok()) << st;
  }
}

// A chunk or a file changed behind lethe's back is DATA_LOSS when read,
// from either store; a reader never passes the bytes off as whole.
TEST(ArtifactChunksTest, ChangedBytesAreDataLossInEitherStore) {
  auto scratch = ScratchDatabase::Create("lethe_chunks_corrupt");
  ASSERT_TRUE(scratch.ok()) << scratch.status();
  Database db({scratch->url(), 2, 10});
  ASSERT_TRUE(Migrate(db).ok());
  const std::string bytes = Weights(kArtifactChunkBytes + 5);
  const std::string sha = Sha256(bytes);
  const std::string dir = ::testing::TempDir() + "/lethe_artifacts_corrupt";
  std::vector<std::unique_ptr<ArtifactStore>> stores;
  stores.push_back(NewPostgresArtifactStore());
  stores.push_back(NewFilesystemArtifactStore(dir));
  for (const auto& store : stores) {
    ASSERT_TRUE(db.Transact([&](Txn& txn) {
                    return store->PutBytes(txn, sha, bytes);
                  }).ok());
    absl::Status st;
    EXPECT_TRUE(ReadAllOf(*store, db, sha, &st) == bytes);
    EXPECT_TRUE(st.ok()) << st;
    // Not their digest: refused, nothing written.
    EXPECT_EQ(db.Transact([&](Txn& txn) {
                  return store->PutBytes(txn, Sha256("other"), bytes);
                }).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(store->Open(db, Sha256("other")).ok());
    // Changed behind lethe's back.
    ASSERT_TRUE(RunSql(scratch->url(),
                       "UPDATE artifact_chunks SET data = "
                       "overlay(data PLACING '\\x00' FROM 3) WHERE seq = 1")
                    .ok());
    std::FILE* f = std::fopen(
        (dir + "/" + ToHex(sha).substr(0, 2) + "/" + ToHex(sha)).c_str(),
        "r+b");
    if (f != nullptr) {
      std::fseek(f, 7, SEEK_SET);
      std::fputc(bytes[7] ^ 1, f);
      std::fclose(f);
    }
    ReadAllOf(*store, db, sha, &st);
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
    auto whole = db.TransactValue<std::string>(
        [&](Txn& txn) { return store->Get(txn, sha); });
    EXPECT_EQ(whole.status().code(), absl::StatusCode::kDataLoss);
    ASSERT_TRUE(
        db.Transact([&](Txn& txn) { return store->Delete(txn, sha); }).ok());
  }
}

}  // namespace
}  // namespace lethe::storage::testing

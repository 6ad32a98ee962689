// The backend contract (tests/memory/backend_contract.h) on PostgreSQL: the
// direct tests of the PostgreSQL stores and work queue (claims, fencing,
// lease expiry and rescue, publication, exclusions, certificates), each on
// a fresh scratch database. Time moves by shifting every stored deadline
// and creation time back (the database's now() cannot be moved).
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "storage/postgres/backend.h"
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

INSTANTIATE_TEST_SUITE_P(Postgres, BackendContractTest,
                         ::testing::Values(BackendFactory{
                             "postgres", MakePostgres, ShiftTime}),
                         BackendFactoryName);

}  // namespace
}  // namespace lethe::storage::testing

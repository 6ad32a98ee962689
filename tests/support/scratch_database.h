// A fresh, uniquely named database per test, so that integration tests can
// run in parallel (ctest -j) against one PostgreSQL server without seeing
// each other's rows.
//
// The server is the one named by LETHE_TEST_DATABASE_URL (set by .ci/run and
// scripts/test.sh, any libpq URL or key=value string whose role may create
// databases); when it is unset, a PgInstance shared by the whole test process
// is started on first use and stopped at exit.
#ifndef LETHE_TESTS_SUPPORT_SCRATCH_DATABASE_H_
#define LETHE_TESTS_SUPPORT_SCRATCH_DATABASE_H_

#include <string>

#include "absl/status/statusor.h"

namespace lethe::testing {

// The server's URL as described above. Starting the fallback instance may
// fail (e.g. PostgreSQL is not installed); the error says so.
absl::StatusOr<std::string> TestDatabaseUrl();

// `url` with its database replaced by `database` (URL or key=value form).
std::string WithDatabase(const std::string& url, const std::string& database);

// `url` connecting as `user` instead (URL or key=value form).
std::string WithUser(const std::string& url, const std::string& user);

// `url` (a migrated database, as its owner) as the runtime role of
// migration 6 sees it: a login role `lethe_test_runtime`, member of
// `lethe_runtime`, created on first use (the test servers trust local
// connections, so it needs no password).
absl::StatusOr<std::string> AsRuntimeRole(const std::string& url);

class ScratchDatabase {
 public:
  // Creates the database. `prefix` (letters, digits, '_') helps find it
  // when a test leaves it behind.
  static absl::StatusOr<ScratchDatabase> Create(
      const std::string& prefix = "lethe_test");

  // Drops the database, terminating any connections still open to it
  // (DROP DATABASE ... WITH (FORCE)).
  ~ScratchDatabase();
  ScratchDatabase(ScratchDatabase&& other) noexcept;
  ScratchDatabase& operator=(ScratchDatabase&& other) noexcept;
  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;

  const std::string& name() const { return name_; }
  // libpq connection string of the new database.
  const std::string& url() const { return url_; }

 private:
  ScratchDatabase(std::string server_url, std::string name);
  void Drop();

  std::string server_url_;  // where CREATE/DROP DATABASE run
  std::string name_;
  std::string url_;
};

}  // namespace lethe::testing

#endif  // LETHE_TESTS_SUPPORT_SCRATCH_DATABASE_H_

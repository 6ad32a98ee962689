#include "tests/support/scratch_database.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "storage/postgres/run_sql.h"
#include "storage/reachability.h"
#include "tests/support/pg_instance.h"

namespace lethe::testing {
namespace {

absl::Status Exec(const std::string& server_url, const std::string& sql) {
  auto rows = storage::RunSql(server_url, sql);
  if (!rows.ok()) {
    return absl::UnavailableError(
        absl::StrCat(sql, ": ", storage::ErrorDetail(rows.status())));
  }
  return absl::OkStatus();
}

std::string UniqueName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  static const uint32_t salt = std::random_device{}();
  return absl::StrCat(prefix, "_", getpid(), "_", counter++, "_",
                      absl::Hex(salt & 0xffffff));
}

}  // namespace

absl::StatusOr<std::string> TestDatabaseUrl() {
  const char* env = std::getenv("LETHE_TEST_DATABASE_URL");
  if (env != nullptr && *env != '\0') return std::string(env);
  // Process-wide fallback, stopped by its destructor at exit.
  static std::mutex mu;
  static std::unique_ptr<PgInstance> instance;
  std::lock_guard<std::mutex> lock(mu);
  if (instance == nullptr) {
    auto pg = std::make_unique<PgInstance>();
    if (absl::Status s = pg->Start(); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("LETHE_TEST_DATABASE_URL is unset and "
                                       "starting a local PostgreSQL failed: ",
                                       s.message()));
    }
    instance = std::move(pg);
  }
  return instance->Url();
}

std::string WithDatabase(const std::string& url, const std::string& database) {
  for (std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (url.compare(0, scheme.size(), scheme) != 0) continue;
    size_t authority_end = url.find_first_of("/?", scheme.size());
    if (authority_end == std::string::npos)
      return absl::StrCat(url, "/", database);
    size_t query = url.find('?', authority_end);
    std::string rest = query == std::string::npos ? "" : url.substr(query);
    return absl::StrCat(url.substr(0, authority_end), "/", database, rest);
  }
  // key=value form: a later keyword overrides an earlier one.
  return absl::StrCat(url, " dbname=", database);
}

std::string WithUser(const std::string& url, const std::string& user) {
  for (std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (url.compare(0, scheme.size(), scheme) != 0) continue;
    // A query parameter after the userinfo: libpq takes the later one.
    return absl::StrCat(url, url.find('?') == std::string::npos ? "?" : "&",
                        "user=", user);
  }
  return absl::StrCat(url, " user=", user);
}

absl::StatusOr<std::string> AsRuntimeRole(const std::string& url) {
  // Roles are per cluster and test processes run in parallel: create it
  // once, tolerating a concurrent creation.
  absl::Status made = Exec(url, R"sql(
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lethe_test_runtime')
  THEN
    CREATE ROLE lethe_test_runtime LOGIN IN ROLE lethe_runtime;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END;
$$)sql");
  if (!made.ok()) return made;
  return WithUser(url, "lethe_test_runtime");
}

absl::StatusOr<ScratchDatabase> ScratchDatabase::Create(
    const std::string& prefix) {
  for (char c : prefix) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return absl::InvalidArgumentError(absl::StrCat(
          "ScratchDatabase prefix '", prefix, "' may hold only [A-Za-z0-9_]"));
    }
  }
  absl::StatusOr<std::string> server = TestDatabaseUrl();
  if (!server.ok()) return server.status();
  std::string name = absl::AsciiStrToLower(UniqueName(prefix));
  if (absl::Status s = Exec(*server, absl::StrCat("CREATE DATABASE ", name));
      !s.ok()) {
    return s;
  }
  return ScratchDatabase(*server, std::move(name));
}

ScratchDatabase::ScratchDatabase(std::string server_url, std::string name)
    : server_url_(std::move(server_url)),
      name_(std::move(name)),
      url_(WithDatabase(server_url_, name_)) {}

ScratchDatabase::ScratchDatabase(ScratchDatabase&& other) noexcept
    : server_url_(std::move(other.server_url_)),
      name_(std::exchange(other.name_, "")),
      url_(std::move(other.url_)) {}

ScratchDatabase& ScratchDatabase::operator=(ScratchDatabase&& other) noexcept {
  if (this != &other) {
    Drop();
    server_url_ = std::move(other.server_url_);
    name_ = std::exchange(other.name_, "");
    url_ = std::move(other.url_);
  }
  return *this;
}

ScratchDatabase::~ScratchDatabase() { Drop(); }

void ScratchDatabase::Drop() {
  if (name_.empty()) return;
  absl::Status s = Exec(server_url_, absl::StrCat("DROP DATABASE IF EXISTS ",
                                                  name_, " WITH (FORCE)"));
  if (!s.ok()) std::cerr << "ScratchDatabase: " << s << "\n";
  name_.clear();
}

}  // namespace lethe::testing

// What a client and an operator each learn when PostgreSQL cannot be
// reached (storage/reachability.h, StatusFromCurrentException), and the
// backoff of the wait at start. The one test outside storage/ that uses
// libpqxx: it throws libpqxx's exceptions to test their mapping.
#include "storage/reachability.h"

#include <functional>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/except>

#include "absl/strings/str_cat.h"
#include "storage/postgres/database.h"
#include "tests/support/process.h"

namespace lethe::storage {
namespace {

using namespace std::chrono_literals;

absl::Status Mapped(const std::function<void()>& thrower) {
  try {
    thrower();
  } catch (...) {
    return StatusFromCurrentException();
  }
  return absl::OkStatus();
}

TEST(ReachabilityTest, BrokenConnectionKeepsTheAddressOutOfTheMessage) {
  const auto st = Mapped([] {
    throw pqxx::broken_connection(
        "connection to server at \"10.1.2.3\", port 6543 failed: FATAL:  "
        "role \"svc_lethe\" does not exist");
  });
  EXPECT_TRUE(absl::IsUnavailable(st));
  EXPECT_EQ(st.message(), kDatabaseUnavailable);
  EXPECT_NE(ErrorDetail(st).find("10.1.2.3\", port 6543"), std::string::npos);
  EXPECT_NE(ErrorDetail(st).find("svc_lethe"), std::string::npos);
}

TEST(ReachabilityTest, LostCommitSaysRetryButNotWhere) {
  const auto st = Mapped([] {
    throw pqxx::in_doubt_error("server at 10.1.2.3:6543 closed the connection");
  });
  EXPECT_TRUE(absl::IsUnavailable(st));
  EXPECT_NE(st.message().find("outcome unknown"), std::string::npos);
  EXPECT_EQ(st.message().find("10.1.2.3"), std::string::npos);
  EXPECT_NE(ErrorDetail(st).find("10.1.2.3:6543"), std::string::npos);
}

TEST(ReachabilityTest, RealConnectionRefusedIsGeneric) {
  const int port = testing::FreePort();  // nothing listens there
  ASSERT_GT(port, 0);
  Database db(
      {absl::StrCat("postgresql://lethe@127.0.0.1:", port, "/lethe"), 1, 5});
  const auto st = db.Ping();
  ASSERT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_EQ(st.message().find(absl::StrCat(port)), std::string::npos) << st;
  EXPECT_EQ(st.message().find("127.0.0.1"), std::string::npos) << st;
  EXPECT_NE(ErrorDetail(st).find(absl::StrCat(port)), std::string::npos)
      << ErrorDetail(st);
}

TEST(ReachabilityTest, ErrorDetailWithoutPayloadIsTheMessage) {
  EXPECT_EQ(ErrorDetail(absl::NotFoundError("no such model")), "no such model");
}

TEST(ReachabilityTest, RedactsPasswordsInBothUrlForms) {
  EXPECT_EQ(RedactedDatabaseUrl("postgresql://lethe:s3cr3t@db:5432/lethe"),
            "postgresql://lethe:***@db:5432/lethe");
  EXPECT_EQ(RedactedDatabaseUrl("postgres://lethe@db/lethe"),
            "postgres://lethe@db/lethe");
  EXPECT_EQ(RedactedDatabaseUrl("postgresql:///lethe"), "postgresql:///lethe");
  EXPECT_EQ(RedactedDatabaseUrl("host=db password=s3cr3t dbname=lethe"),
            "host=db password=*** dbname=lethe");
  EXPECT_EQ(RedactedDatabaseUrl("host=db password='a b' user=x"),
            "host=db password=*** user=x");
}

TEST(ReachabilityTest, BackoffDoublesToItsCapAndStopsOnRequest) {
  std::vector<int64_t> delays;
  int calls = 0;
  auto st = RetryWhileUnavailable(
      [&] {
        return ++calls < 6 ? absl::UnavailableError("down") : absl::OkStatus();
      },
      [&](const absl::Status&, int attempt, std::chrono::milliseconds d) {
        EXPECT_EQ(attempt, static_cast<int>(delays.size()) + 1);
        delays.push_back(d.count());
        return true;
      },
      Backoff{3000ms, 10000ms});
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(delays, (std::vector<int64_t>{3000, 6000, 10000, 10000, 10000}));

  calls = 0;
  st = RetryWhileUnavailable(
      [&] {
        ++calls;
        return absl::UnavailableError("down");
      },
      [](const absl::Status&, int attempt, std::chrono::milliseconds) {
        return attempt < 2;
      });
  EXPECT_TRUE(absl::IsUnavailable(st));
  EXPECT_EQ(calls, 2);

  // Anything but UNAVAILABLE ends the wait at once.
  st = RetryWhileUnavailable(
      [] { return absl::InternalError("migration 0005 failed"); },
      [](const absl::Status&, int, std::chrono::milliseconds) {
        ADD_FAILURE() << "no pause expected";
        return true;
      });
  EXPECT_TRUE(absl::IsInternal(st));
}

}  // namespace
}  // namespace lethe::storage

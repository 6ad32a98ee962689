// Tests of the integration-test harness itself.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/postgres/run_sql.h"
#include "tests/support/pg_instance.h"
#include "tests/support/process.h"
#include "tests/support/scratch_database.h"

namespace lethe::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

using storage::SqlSession;

// A session on `url`; fails the test when the server cannot be reached.
std::unique_ptr<SqlSession> Connect(const std::string& url) {
  auto session = SqlSession::Open(url);
  EXPECT_TRUE(session.ok()) << session.status();
  return session.ok() ? std::move(session).value() : nullptr;
}

std::string Value(const std::string& url, const std::string& sql) {
  auto value = storage::RunSql(url, sql);
  if (!value.ok() || value->empty() || !value->front()[0]) {
    ADD_FAILURE() << sql << ": " << value.status();
    return "";
  }
  return *value->front()[0];
}

TEST(PgInstanceTest, StopRefusesConnectionsAndStartBringsDataBack) {
  PgInstance pg;
  ASSERT_TRUE(pg.Start().ok());
  const std::string url = pg.Url();
  ASSERT_TRUE(storage::RunSql(url,
                              "CREATE TABLE t (x int); "
                              "INSERT INTO t VALUES (1), (2)")
                  .ok());
  ASSERT_TRUE(pg.Stop().ok());
  EXPECT_FALSE(pg.running());
  EXPECT_TRUE(absl::IsUnavailable(SqlSession::Open(url).status()));

  ASSERT_TRUE(pg.Start().ok());
  EXPECT_EQ(pg.Url(), url);
  EXPECT_EQ(Value(url, "SELECT count(*) FROM t"), "2");
}

TEST(PgInstanceTest, KillDropsConnectionsAndKeepsCommittedRows) {
  PgInstance pg;
  ASSERT_TRUE(pg.Start().ok());
  auto conn = Connect(pg.Url());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(
      conn->Exec("CREATE TABLE t (x int); INSERT INTO t VALUES (1)").ok());
  pg.Kill();
  EXPECT_FALSE(conn->Exec("SELECT 1").ok());
  ASSERT_TRUE(pg.Restart().ok());
  EXPECT_EQ(Value(pg.Url(), "SELECT count(*) FROM t"), "1");
}

TEST(PgInstanceTest, ListensOnLoopbackWithConfiguredLimits) {
  PgInstance pg;
  ASSERT_TRUE(pg.Start().ok());
  EXPECT_EQ(Value(pg.Url(), "SHOW listen_addresses"), "127.0.0.1");
  EXPECT_EQ(Value(pg.Url(), "SHOW max_connections"), "200");
  EXPECT_EQ(Value(pg.Url(), "SELECT current_user"), "lethe");
}

TEST(ScratchDatabaseTest, DatabasesAreSeparateAndDroppedAtDestruction) {
  auto server = TestDatabaseUrl();
  ASSERT_TRUE(server.ok()) << server.status();
  std::string name;
  {
    // Declared first, destroyed last: a connection still open when the
    // database is dropped must not block the drop.
    std::unique_ptr<SqlSession> lingering;
    auto a = ScratchDatabase::Create();
    auto b = ScratchDatabase::Create();
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_NE(a->name(), b->name());
    name = a->name();
    EXPECT_EQ(Value(a->url(), "SELECT current_database()"), a->name());
    ASSERT_TRUE(
        storage::RunSql(a->url(), "CREATE TABLE only_in_a (x int)").ok());
    EXPECT_EQ(Value(b->url(), "SELECT to_regclass('only_in_a') IS NULL"), "t");
    lingering = Connect(a->url());
    ASSERT_NE(lingering, nullptr);
  }
  EXPECT_EQ(Value(*server, absl::StrCat("SELECT count(*) FROM pg_database "
                                        "WHERE datname = '",
                                        name, "'")),
            "0");
}

TEST(ScratchDatabaseTest, RejectsPrefixThatIsNotAnIdentifier) {
  auto db = ScratchDatabase::Create("x; DROP DATABASE lethe");
  EXPECT_EQ(db.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WithDatabaseTest, ReplacesTheDatabaseInUrlsAndKeyValueStrings) {
  EXPECT_EQ(WithDatabase("postgresql://lethe@127.0.0.1:5432/lethe", "d"),
            "postgresql://lethe@127.0.0.1:5432/d");
  EXPECT_EQ(WithDatabase("postgres://u:p@h:1/db?sslmode=disable", "d"),
            "postgres://u:p@h:1/d?sslmode=disable");
  EXPECT_EQ(WithDatabase("postgresql://h?sslmode=disable", "d"),
            "postgresql://h/d?sslmode=disable");
  EXPECT_EQ(WithDatabase("postgresql://h", "d"), "postgresql://h/d");
  EXPECT_EQ(WithDatabase("host=h dbname=x", "d"), "host=h dbname=x dbname=d");
}

TEST(ScratchDatabaseTest, KeyValueUrlReachesTheNewDatabase) {
  auto server = TestDatabaseUrl();
  ASSERT_TRUE(server.ok()) << server.status();
  auto db = ScratchDatabase::Create();
  ASSERT_TRUE(db.ok()) << db.status();
  auto where =
      storage::RunSql(*server,
                      "SELECT host(inet_server_addr()), inet_server_port(), "
                      "current_user");
  ASSERT_TRUE(where.ok() && where->size() == 1) << where.status();
  const storage::SqlRow& row = where->front();
  ASSERT_TRUE(row[0] && row[1] && row[2]);
  const std::string kv = absl::StrCat("host=", *row[0], " port=", *row[1],
                                      " user=", *row[2], " dbname=postgres");
  EXPECT_EQ(Value(WithDatabase(kv, db->name()), "SELECT current_database()"),
            db->name());
}

TEST(SubprocessTest, CapturesStderrAndExitCode) {
  std::string err = ::testing::TempDir() + "/subprocess_stderr.txt";
  SubprocessOptions options;
  options.program = "sh";
  options.args = {"-c", "echo \"to stderr $GREETING\" >&2; exit 3"};
  options.env = {{"GREETING", "hello"}};
  options.stderr_path = err;
  auto child = Subprocess::Start(options);
  ASSERT_TRUE(child.ok()) << child.status();
  auto exit = (*child)->Wait(seconds(10));
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->exited);
  EXPECT_EQ(exit->code, 3);
  EXPECT_EQ((*child)->Stderr(), "to stderr hello\n");
}

TEST(SubprocessTest, SignalTerminatesAndWaitTimesOut) {
  SubprocessOptions options;
  options.program = "sleep";
  options.args = {"30"};
  auto child = Subprocess::Start(options);
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_FALSE((*child)->Wait(milliseconds(50)).has_value());
  EXPECT_TRUE((*child)->Running());
  (*child)->SendSignal(SIGTERM);
  auto exit = (*child)->Wait(seconds(10));
  ASSERT_TRUE(exit.has_value());
  EXPECT_FALSE(exit->exited);
  EXPECT_EQ(exit->signal, SIGTERM);
}

// Starts `sh -c script`, where the script prints the pid of a background
// process, kills the shell and says whether that process is dead when
// Kill() returns (gone, or a zombie waiting for init to reap it).
void ExpectKillEnds(const std::string& script, const std::string& name) {
  std::string out = ::testing::TempDir() + "/subprocess_" + name + ".txt";
  SubprocessOptions options;
  options.program = "sh";
  options.args = {"-c", script};
  options.stdout_path = out;
  auto child = Subprocess::Start(options);
  ASSERT_TRUE(child.ok()) << child.status();
  std::string grandchild;
  for (int i = 0; i < 500 && grandchild.empty(); ++i) {
    std::this_thread::sleep_for(milliseconds(10));
    grandchild = (*child)->Stdout();
  }
  ASSERT_FALSE(grandchild.empty());
  pid_t pid = std::stoi(grandchild);
  EXPECT_EQ(kill(pid, 0), 0);
  ExitStatus exit = (*child)->Kill();
  EXPECT_EQ(exit.signal, SIGKILL);
  std::string stat = ReadFileOrEmpty("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  EXPECT_TRUE(stat.empty() ||
              (paren != std::string::npos && stat.substr(paren + 2, 1) == "Z"))
      << stat;
}

TEST(SubprocessTest, KillReachesTheWholeProcessGroup) {
  ExpectKillEnds("sleep 30 & echo $!; wait", "group");
}

// PostgreSQL's backends leave the postmaster's group (setsid); a kill that
// missed them left a killed server answering queries.
TEST(SubprocessTest, KillReachesDescendantsThatLeftTheGroup) {
  ExpectKillEnds("setsid sleep 30 & echo $!; wait", "session");
}

TEST(SubprocessTest, MissingProgramIsNotFound) {
  SubprocessOptions options;
  options.program = "/nonexistent/lethe-binary";
  auto child = Subprocess::Start(options);
  EXPECT_EQ(child.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(child.status().message(), "lethe-binary"));
}

TEST(FreePortTest, PortCanBeBoundAndWaitForPortSeesAListener) {
  int port = FreePort();
  ASSERT_GT(port, 0);
  EXPECT_FALSE(WaitForPort(port, milliseconds(50)));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  EXPECT_TRUE(WaitForPort(port, seconds(2)));
  close(fd);
}

}  // namespace
}  // namespace lethe::testing

// A private PostgreSQL 15 cluster for one test process, for the tests that
// must stop, kill or restart the database under a running lethe (health
// turning NOT_SERVING, restart without loss). Tests that only need a
// database use ScratchDatabase (scratch_database.h) instead.
//
// The cluster lives in a fresh temporary folder (removed by the destructor),
// listens on 127.0.0.1 only, on a free port that stays the same across
// Stop()/Start() so URLs handed out stay valid, with trust authentication,
// superuser `lethe`, database `lethe`, and fsync off: an operating-system
// crash could lose data, a process crash cannot. synchronous_commit stays on,
// so what a client saw committed survives Kill() and the next Start().
// When this process is root, initdb and postgres run as the `postgres` user
// (initdb refuses root). The postmaster is a child of this process and gets
// SIGQUIT if the thread that started it exits, so a crashed test leaves no
// server behind.
//
// Not thread-safe: drive one instance from one thread.
#ifndef LETHE_TESTS_SUPPORT_PG_INSTANCE_H_
#define LETHE_TESTS_SUPPORT_PG_INSTANCE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tests/support/process.h"

namespace lethe::testing {

struct PgInstanceOptions {
  // Where to find initdb and postgres.
  std::string bin_dir = "/usr/lib/postgresql/15/bin";
  // Parent of the temporary folder; empty: $TMPDIR or /tmp.
  std::string temp_parent;
  int max_connections = 200;
};

class PgInstance {
 public:
  explicit PgInstance(PgInstanceOptions options = {});
  ~PgInstance();  // Stops the server (fast) and removes the folder.
  PgInstance(const PgInstance&) = delete;
  PgInstance& operator=(const PgInstance&) = delete;

  // Creates the cluster on first call, starts the server and waits until it
  // accepts connections (about 1-2 s the first time). No-op when running.
  // The error carries the tail of the server log.
  absl::Status Start();
  // Fast shutdown (SIGINT: aborts open transactions, disconnects clients),
  // waits for it. No-op when not running.
  absl::Status Stop();
  // SIGKILL to the postmaster and all its backends: a crash.
  void Kill();
  absl::Status Restart();

  bool running() const { return server_ != nullptr; }
  int port() const { return port_; }
  // postgresql://lethe@127.0.0.1:PORT/lethe; valid across restarts.
  std::string Url() const;
  std::string LogPath() const { return dir_ + "/postgres.log"; }
  const std::string& dir() const { return dir_; }

 private:
  absl::Status Init();
  absl::Status Run(std::vector<std::string> args, const std::string& log);
  absl::Status StartOnce();
  absl::Status CreateDatabase();

  PgInstanceOptions options_;
  std::string dir_;   // the temporary folder, owned by the server's user
  std::string user_;  // "postgres" when root, else "" (this user)
  bool initialized_ = false;
  bool database_created_ = false;
  int port_ = 0;
  std::unique_ptr<Subprocess> server_;
};

}  // namespace lethe::testing

#endif  // LETHE_TESTS_SUPPORT_PG_INSTANCE_H_

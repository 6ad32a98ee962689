// Child processes and loopback ports for tests that run real binaries: the
// lethe server as a separate process, PostgreSQL under PgInstance.
//
// Nothing here goes through a shell: programs are exec'd with an argument
// vector, so arguments need no quoting.
#ifndef LETHE_TESTS_SUPPORT_PROCESS_H_
#define LETHE_TESTS_SUPPORT_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lethe::testing {

// A loopback TCP port that was free a moment ago (bound to 127.0.0.1:0 and
// released). Another process may take it before the caller binds it; callers
// that start a server should retry with a fresh port on "address in use".
// Returns 0 if no socket could be bound.
int FreePort();

// Polls until a TCP connection to 127.0.0.1:port succeeds or the timeout
// passes. Returns whether it connected.
bool WaitForPort(int port, std::chrono::milliseconds timeout);

// The whole contents of a file, or "" if it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

struct SubprocessOptions {
  // Path of the program; looked up in PATH when it has no '/'.
  std::string program;
  // Arguments after argv[0] (argv[0] is `program`).
  std::vector<std::string> args;
  // Variables set (or overridden) in the child, on top of this process's
  // environment unless `clear_env`.
  std::vector<std::pair<std::string, std::string>> env;
  bool clear_env = false;
  // Files that receive the child's stdout and stderr (created, and
  // truncated unless `append`). Empty: inherit this process's stream. The
  // same path for both sends both there.
  std::string stdout_path;
  std::string stderr_path;
  bool append = false;
  // Working directory of the child; empty: this process's.
  std::string working_dir;
  // Run the child as this user (this process must be root); empty: as this
  // process's user.
  std::string user;
  // Signal the kernel sends the child when the thread that started it exits
  // (PR_SET_PDEATHSIG), so a crashed test leaves no stray server; 0: none.
  int parent_death_signal = 0;
  // Run the child in its own process group so that Kill() and SendSignal()
  // with `group` reach its descendants too.
  bool new_process_group = true;
};

struct ExitStatus {
  bool exited = false;  // returned from main or called exit()
  int code = 0;         // exit code when `exited`
  int signal = 0;       // terminating signal when !exited
  bool Success() const { return exited && code == 0; }
  std::string ToString() const;
};

// One running child process. Not thread-safe: use from one thread. The
// destructor kills (SIGKILL, process group) and reaps a child that is still
// running, so a failed test leaves no stray server behind.
class Subprocess {
 public:
  // Starts the program. Fails (INTERNAL / NOT_FOUND) if it cannot be exec'd,
  // e.g. the binary does not exist; the error says which and why.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      SubprocessOptions options);

  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();

  // Sends `sig` to the child (to its process group when `group` and the
  // child has one). No-op once it has been reaped.
  void SendSignal(int sig, bool group = false);

  // Waits up to `timeout` for the child to exit. nullopt: still running.
  std::optional<ExitStatus> Wait(std::chrono::milliseconds timeout);

  // SIGKILL to the process group (or the child) and to every descendant,
  // also those that left the group (e.g. PostgreSQL backends, which call
  // setsid()); reaps the child and waits until the descendants are gone.
  ExitStatus Kill();

  // Contents of the stderr / stdout file so far ("" when inherited).
  std::string Stderr() const { return ReadFileOrEmpty(options_.stderr_path); }
  std::string Stdout() const { return ReadFileOrEmpty(options_.stdout_path); }

 private:
  Subprocess(SubprocessOptions options, pid_t pid)
      : options_(std::move(options)), pid_(pid) {}
  bool Reap(bool block);

  SubprocessOptions options_;
  pid_t pid_;
  std::optional<ExitStatus> exit_;
};

}  // namespace lethe::testing

#endif  // LETHE_TESTS_SUPPORT_PROCESS_H_

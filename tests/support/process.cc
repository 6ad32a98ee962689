#include "tests/support/process.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace lethe::testing {
namespace {

// Parent pid and state of a process from /proc/PID/stat; false if gone.
bool ReadStat(pid_t pid, pid_t* parent, char* state) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return false;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  int ppid = 0;
  if (!(rest >> *state >> ppid)) return false;
  *parent = ppid;
  return true;
}

// Every live descendant of `root`, found by walking /proc's parent links.
std::vector<pid_t> Descendants(pid_t root) {
  std::vector<std::pair<pid_t, pid_t>> links;  // (pid, parent)
  if (DIR* dir = opendir("/proc"); dir != nullptr) {
    while (dirent* entry = readdir(dir)) {
      const std::string_view name(entry->d_name);
      int pid = 0;
      auto [end, error] =
          std::from_chars(name.data(), name.data() + name.size(), pid);
      if (error != std::errc() || end != name.data() + name.size()) continue;
      pid_t parent = 0;
      char state = 0;
      if (ReadStat(static_cast<pid_t>(pid), &parent, &state)) {
        links.emplace_back(static_cast<pid_t>(pid), parent);
      }
    }
    closedir(dir);
  }
  std::vector<pid_t> found;
  std::vector<pid_t> frontier{root};
  while (!frontier.empty()) {
    const pid_t parent = frontier.back();
    frontier.pop_back();
    for (const auto& [pid, ppid] : links) {
      if (ppid == parent) {
        found.push_back(pid);
        frontier.push_back(pid);
      }
    }
  }
  return found;
}

// True while `pid` exists and is not a zombie.
bool IsAlive(pid_t pid) {
  pid_t parent = 0;
  char state = 0;
  return ReadStat(pid, &parent, &state) && state != 'Z' && state != 'X';
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// argv/envp as the exec family wants them; the strings stay owned here.
struct CStrings {
  explicit CStrings(std::vector<std::string> s) : strings(std::move(s)) {
    for (std::string& str : strings) pointers.push_back(str.data());
    pointers.push_back(nullptr);
  }
  std::vector<std::string> strings;
  std::vector<char*> pointers;
};

std::vector<std::string> ChildEnvironment(const SubprocessOptions& options) {
  std::vector<std::string> env;
  auto overridden = [&](const char* entry) {
    for (const auto& [name, value] : options.env) {
      if (std::strncmp(entry, name.c_str(), name.size()) == 0 &&
          entry[name.size()] == '=') {
        return true;
      }
    }
    return false;
  };
  if (!options.clear_env) {
    for (char** e = environ; *e != nullptr; ++e) {
      if (!overridden(*e)) env.emplace_back(*e);
    }
  }
  for (const auto& [name, value] : options.env) {
    env.push_back(absl::StrCat(name, "=", value));
  }
  return env;
}

[[noreturn]] void FailChild(int report_fd, int step) {
  int report[2] = {step, errno};
  ssize_t ignored = write(report_fd, report, sizeof(report));
  (void)ignored;
  _exit(127);
}

// In the child between fork and exec: only async-signal-safe calls. On
// failure writes {step, errno} to `report_fd` and exits 127.
[[noreturn]] void ExecChild(const SubprocessOptions& options, pid_t parent,
                            const passwd* user, const CStrings& argv,
                            const CStrings& envp, int report_fd) {
  auto fail = [report_fd](int step) { FailChild(report_fd, step); };
  if (options.new_process_group && setpgid(0, 0) != 0) fail(1);
  auto redirect = [&](const std::string& path, int target, int step) {
    if (path.empty()) return;
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC;
    flags |= options.append ? O_APPEND : O_TRUNC;
    int fd = open(path.c_str(), flags, 0644);
    if (fd < 0 || dup2(fd, target) < 0) fail(step);
  };
  redirect(options.stdout_path, STDOUT_FILENO, 2);
  if (!options.stderr_path.empty() &&
      options.stderr_path == options.stdout_path) {
    if (dup2(STDOUT_FILENO, STDERR_FILENO) < 0) fail(3);
  } else {
    redirect(options.stderr_path, STDERR_FILENO, 3);
  }
  if (!options.working_dir.empty() && chdir(options.working_dir.c_str()) != 0) {
    fail(4);
  }
  if (user != nullptr) {
    if (setgroups(0, nullptr) != 0 || setgid(user->pw_gid) != 0 ||
        setuid(user->pw_uid) != 0) {
      fail(5);
    }
  }
  // Default dispositions: a shell may have set SIGINT/SIGQUIT to ignored
  // for this process, and SIG_IGN survives exec.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP)
      sigaction(sig, &default_action, nullptr);
  }
  // After setuid: a credential change clears the parent-death signal.
  if (options.parent_death_signal != 0) {
    if (prctl(PR_SET_PDEATHSIG, options.parent_death_signal) != 0) fail(6);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execvpe(argv.pointers[0], argv.pointers.data(), envp.pointers.data());
  FailChild(report_fd, 7);
}

const char* StepName(int step) {
  switch (step) {
    case 1:
      return "setpgid";
    case 2:
      return "opening the stdout file";
    case 3:
      return "opening the stderr file";
    case 4:
      return "chdir to the working directory";
    case 5:
      return "switching user";
    case 6:
      return "prctl(PR_SET_PDEATHSIG)";
    default:
      return "exec";
  }
}

}  // namespace

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

bool WaitForPort(int port, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in addr = Loopback(port);
    bool ok =
        connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

std::string ReadFileOrEmpty(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

std::string ExitStatus::ToString() const {
  if (exited) return absl::StrCat("exited with code ", code);
  return absl::StrCat("killed by signal ", signal, " (", strsignal(signal),
                      ")");
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    SubprocessOptions options) {
  if (options.program.empty()) {
    return absl::InvalidArgumentError("Subprocess: no program given");
  }
  passwd* user = nullptr;
  if (!options.user.empty()) {
    user = getpwnam(options.user.c_str());
    if (user == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("Subprocess: no user '", options.user, "'"));
    }
  }
  std::vector<std::string> args{options.program};
  args.insert(args.end(), options.args.begin(), options.args.end());
  CStrings argv(std::move(args));
  CStrings envp(ChildEnvironment(options));

  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", strerror(errno)));
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(report[0]);
    close(report[1]);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) ExecChild(options, parent, user, argv, envp, report[1]);
  close(report[1]);
  int failure[2];
  ssize_t n;
  do {
    n = read(report[0], failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n == static_cast<ssize_t>(sizeof(failure))) {
    waitpid(pid, nullptr, 0);
    std::string what =
        absl::StrCat("Subprocess: ", StepName(failure[0]), " failed for '",
                     options.program, "': ", strerror(failure[1]));
    if (failure[0] == 7 && failure[1] == ENOENT) {
      return absl::NotFoundError(what);
    }
    return absl::InternalError(what);
  }
  return std::unique_ptr<Subprocess>(new Subprocess(std::move(options), pid));
}

Subprocess::~Subprocess() {
  if (!exit_) Kill();
}

bool Subprocess::Reap(bool block) {
  if (exit_) return true;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return false;
  ExitStatus s;
  s.exited = WIFEXITED(status);
  s.code = s.exited ? WEXITSTATUS(status) : 0;
  s.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  exit_ = s;
  return true;
}

bool Subprocess::Running() { return !Reap(/*block=*/false); }

void Subprocess::SendSignal(int sig, bool group) {
  if (exit_) return;
  kill(group && options_.new_process_group ? -pid_ : pid_, sig);
}

std::optional<ExitStatus> Subprocess::Wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!Reap(/*block=*/false)) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return exit_;
}

ExitStatus Subprocess::Kill() {
  if (exit_) return *exit_;
  // A process may leave its group: PostgreSQL's backends call setsid(), so
  // a SIGKILL to the postmaster's group leaves them serving their clients
  // until they notice the postmaster is gone. Like `kill -9` of a whole
  // server, stop the tree so that it cannot fork, collect every
  // descendant, and kill them all.
  SendSignal(SIGSTOP, /*group=*/true);
  std::vector<pid_t> tree = Descendants(pid_);
  SendSignal(SIGKILL, /*group=*/true);
  for (pid_t p : tree) kill(p, SIGKILL);
  Reap(/*block=*/true);
  // The descendants, reparented when the child died, end on their own
  // schedule: a restart racing them found the old server's shared memory
  // still in use. Wait (up to 10 s) until each is gone or a zombie (whose
  // files and sockets are closed).
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (pid_t p : tree) {
    while (IsAlive(p) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return *exit_;
}

}  // namespace lethe::testing

#include "worker/engine/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace lethe::worker {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kStderrTail = 4096;

// The bubblewrap command line that confines the engine (see sandbox.h).
std::vector<std::string> BwrapArgs(const SandboxOptions& o) {
  std::vector<std::string> a = {
      o.bwrap, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid",
      "65534", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
      "--ro-bind", "/usr", "/usr", "--ro-bind-try", "/etc/ld.so.cache",
      "/etc/ld.so.cache",
      // Debian's alternatives pick the BLAS: libblas.so.3 links through it.
      "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
      "--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu",
      "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp"};
  // Debian's merged /usr: /lib, /lib64, /bin are links into it.
  for (const char* link : {"lib", "lib64", "bin", "sbin"}) {
    std::error_code ec;
    const std::filesystem::path p = std::string("/") + link;
    if (std::filesystem::is_symlink(p, ec)) {
      a.insert(a.end(),
               {"--symlink", std::filesystem::read_symlink(p, ec), p.string()});
    } else if (std::filesystem::is_directory(p, ec)) {
      a.insert(a.end(), {"--ro-bind", p.string(), p.string()});
    }
  }
  for (const std::string& p : o.ro_paths) {
    a.insert(a.end(), {"--ro-bind", p, p});
  }
  // A LibTorch outside /usr (the CUDA image's /opt/libtorch/lib) is found
  // through LD_LIBRARY_PATH, which the engine inherits: show it read-only.
  if (const char* path = std::getenv("LD_LIBRARY_PATH")) {
    for (absl::string_view dir : absl::StrSplit(path, ':')) {
      if (dir.empty() || dir.substr(0, 5) == "/usr/") continue;
      a.insert(a.end(), {"--ro-bind-try", std::string(dir), std::string(dir)});
    }
  }
  for (const std::string& d : o.devices) {
    a.insert(a.end(), {"--dev-bind", d, d});
  }
  a.insert(a.end(), {"--ro-bind", o.engine_binary, "/run/lethe-engine", "--",
                     "/run/lethe-engine"});
  return a;
}

// The engine's environment: nothing of the worker's (LETHE_DATABASE_URL,
// key paths...) but the numerical libraries' settings, which change the
// kernels and so the bits of a result (OPENBLAS_CORETYPE picks OpenBLAS's
// kernels), and the library path a LibTorch outside /usr needs.
std::vector<std::string> EngineEnvironment() {
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LC_ALL=C",
                                  "HOME=/tmp"};
  bool wait_policy = false;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view var(*e);
    for (std::string_view prefix :
         {"OPENBLAS_", "OMP_", "GOMP_", "MKL_", "KMP_", "CUDA_", "NVIDIA_",
          "LD_LIBRARY_PATH="}) {
      if (var.substr(0, prefix.size()) == prefix) {
        env.emplace_back(var);
        wait_policy = wait_policy || var.substr(0, 16) == "OMP_WAIT_POLICY=";
        break;
      }
    }
  }
  // libgomp reads it at load (core/runtime.h): passive waiting threads.
  if (!wait_policy) env.emplace_back("OMP_WAIT_POLICY=PASSIVE");
  return env;
}

struct CArgs {
  explicit CArgs(std::vector<std::string> s) : strings(std::move(s)) {
    for (std::string& str : strings) ptrs.push_back(str.data());
    ptrs.push_back(nullptr);
  }
  std::vector<std::string> strings;
  std::vector<char*> ptrs;
};

// In the forked child: only async-signal-safe calls until exec.
[[noreturn]] void Exec(const SandboxOptions& o, const CArgs& argv,
                       char* const envp[], int in, int out, int err) {
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(126);
  // Nothing of the worker's: its database sockets, artifact files, keys.
  if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {  // before Linux 5.9
    rlimit files{};
    const int top =
        getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < (1U << 20)
            ? static_cast<int>(files.rlim_cur)
            : (1 << 20);
    for (int fd = 3; fd < top; ++fd) close(fd);
  }
  setsid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  // CPU: SIGXCPU at the soft limit, SIGKILL a second later.
  auto limit = [](int resource, int64_t value, int64_t hard_extra) {
    if (value <= 0) return true;
    rlimit r{static_cast<rlim_t>(value),
             static_cast<rlim_t>(value + hard_extra)};
    return setrlimit(resource, &r) == 0;
  };
  rlimit no_core{0, 0};
  if (!limit(RLIMIT_AS, o.memory_bytes, 0) ||
      !limit(RLIMIT_CPU, o.cpu_seconds, 1) ||
      setrlimit(RLIMIT_CORE, &no_core) != 0) {
    _exit(126);
  }
  execve(argv.ptrs[0], argv.ptrs.data(), envp);
  _exit(127);
}

// The pipes' parent ends and the process; closes and kills on destruction.
struct Child {
  pid_t pid = -1;
  int in = -1, out = -1, err = -1;
  bool reaped = false;
  int status = 0;
  ~Child() {
    for (int fd : {in, out, err}) {
      if (fd >= 0) close(fd);
    }
    if (pid > 0 && !reaped) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
  }
  void CloseIn() {
    if (in >= 0) close(in);
    in = -1;
  }
};

absl::Status Spawn(const SandboxOptions& o,
                   const std::vector<std::string>& args, Child& child) {
  std::vector<std::string> argv;
  if (o.isolation == Isolation::kNamespaces) {
    argv = BwrapArgs(o);
  } else {
    argv = {o.engine_binary};
  }
  argv.insert(argv.end(), args.begin(), args.end());
  CArgs cargv(std::move(argv));
  CArgs cenv(EngineEnvironment());
  int in[2], out[2], err[2];
  // stdin is a socket so that writing to a dead engine is EPIPE, never
  // SIGPIPE (send with MSG_NOSIGNAL).
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) {
    return absl::InternalError(absl::StrCat("socketpair: ", strerror(errno)));
  }
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", strerror(errno)));
  }
  child.in = in[0];
  child.out = out[0];
  child.err = err[0];
  const pid_t pid = fork();
  if (pid == 0) Exec(o, cargv, cenv.ptrs.data(), in[1], out[1], err[1]);
  close(in[1]);
  close(out[1]);
  close(err[1]);
  if (pid < 0)
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  child.pid = pid;
  for (int fd : {child.in, child.out, child.err}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  return absl::OkStatus();
}

absl::Status WallClockError(const SandboxOptions& o) {
  return absl::DeadlineExceededError(absl::StrCat(
      "the engine run exceeded its wall-clock limit of ", o.wall_seconds,
      " s (--engine-wall-seconds) and was killed"));
}

std::string Tail(const std::string& s) {
  return s.size() <= kStderrTail ? s : s.substr(s.size() - kStderrTail);
}

// What is read from the input and not yet written to the child.
struct Pending {
  std::string bytes = std::string(size_t{1} << 16, '\0');
  size_t begin = 0, end = 0;
};

// Writes what the child's stdin takes, reading the next piece of `input`
// when the last one is gone; closes stdin at the end of the input (or when
// the child stopped reading). False, with `why`, when `input` failed.
bool Feed(Child& c, storage::ByteStream& input, Pending& p, absl::Status& why) {
  if (p.begin == p.end) {
    absl::StatusOr<size_t> n = input.Read(p.bytes.data(), p.bytes.size());
    if (!n.ok()) {
      why = n.status();
      return false;
    }
    p.begin = 0;
    p.end = *n;
    if (*n == 0) {
      c.CloseIn();
      return true;
    }
  }
  const ssize_t w =
      send(c.in, p.bytes.data() + p.begin, p.end - p.begin, MSG_NOSIGNAL);
  if (w > 0) p.begin += static_cast<size_t>(w);
  if (w < 0 && errno != EAGAIN && errno != EINTR) c.CloseIn();
  return true;
}

// Feeds `input`, collects stdout and stderr until both close. False when
// the deadline passed, the reply grew past its cap or the input failed
// (`why` says which).
bool Pump(const SandboxOptions& o, Clock::time_point deadline, Child& c,
          storage::ByteStream& input, const OutputSink& out, std::string& err,
          absl::Status& why) {
  int64_t out_bytes = 0;
  const bool timed = o.wall_seconds > 0;
  Pending pending;
  char buf[1 << 16];
  while (c.out >= 0 || c.err >= 0) {
    pollfd fds[3];
    int n = 0;
    for (int fd : {c.out, c.err}) {
      if (fd >= 0) fds[n++] = {fd, POLLIN, 0};
    }
    if (c.in >= 0) fds[n++] = {c.in, POLLOUT, 0};
    int wait_ms = 1000;
    if (timed) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - Clock::now())
                            .count();
      if (left <= 0) {
        why = WallClockError(o);
        return false;
      }
      wait_ms = static_cast<int>(std::min<int64_t>(left, 1000));
    }
    if (poll(fds, n, wait_ms) < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      const int fd = fds[i].fd;
      if (fd == c.in) {
        if (!Feed(c, input, pending, why)) return false;
        continue;
      }
      const ssize_t r = read(fd, buf, sizeof(buf));
      if (r > 0) {
        if (fd == c.err) {
          err.append(buf, static_cast<size_t>(r));
          if (err.size() > 2 * kStderrTail) err = Tail(err);
          continue;
        }
        out_bytes += r;
        if (out_bytes > o.max_reply_bytes) {
          why = absl::ResourceExhaustedError(absl::StrCat(
              "the engine's reply exceeded ", o.max_reply_bytes, " bytes"));
          return false;
        }
        if (absl::Status st =
                out(std::string_view(buf, static_cast<size_t>(r)));
            !st.ok()) {
          why = st;
          return false;
        }
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(fd);
        (fd == c.out ? c.out : c.err) = -1;
      }
    }
  }
  return true;
}

absl::Status ExitError(const SandboxOptions& o, int status,
                       const std::string& err) {
  const std::string tail =
      err.empty() ? "" : absl::StrCat("; its stderr ends: ", Tail(err));
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  // bubblewrap exits with 128 + N when the process it ran died of signal N.
  if (o.isolation == Isolation::kNamespaces && WIFEXITED(status) &&
      WEXITSTATUS(status) > 128) {
    sig = WEXITSTATUS(status) - 128;
  }
  if (sig != 0) {
    // The soft CPU limit's SIGXCPU ends the process before the hard
    // limit's SIGKILL could.
    if (sig == SIGXCPU) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the engine run exceeded its CPU limit of ",
                       o.cpu_seconds, " s (--engine-cpu-seconds)", tail));
    }
    return absl::InternalError(
        absl::StrCat("the engine process was killed by signal ", sig, " (",
                     strsignal(sig), ")", tail));
  }
  return absl::InternalError(absl::StrCat(
      "the engine process exited with code ", WEXITSTATUS(status), tail));
}

}  // namespace

absl::StatusOr<Isolation> ParseIsolation(std::string_view name) {
  if (name == "namespaces") return Isolation::kNamespaces;
  if (name == "process") return Isolation::kProcess;
  return absl::InvalidArgumentError(
      absl::StrCat("engine isolation must be 'namespaces' or 'process', got '",
                   absl::string_view(name.data(), name.size()), "'"));
}

std::string DefaultEngineBinary() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "lethe-engine";
  return (self.parent_path() / "lethe-engine").string();
}

absl::Status CheckSandbox(const SandboxOptions& o) {
  if (access(o.engine_binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the engine binary '", o.engine_binary,
                     "' is not executable (--engine-binary); build or install "
                     "lethe-engine"));
  }
  if (o.isolation == Isolation::kNamespaces &&
      access(o.bwrap.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", o.bwrap,
                     "' not found: install bubblewrap, or run the engine "
                     "without namespaces (--engine-isolation=process)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RunInSandbox(const SandboxOptions& options,
                                         const std::vector<std::string>& args,
                                         storage::ByteStream& input) {
  std::string out;
  absl::Status st =
      RunInSandbox(options, args, input, [&out](std::string_view bytes) {
        out.append(bytes);
        return absl::OkStatus();
      });
  if (!st.ok()) return st;
  return out;
}

absl::Status RunInSandbox(const SandboxOptions& options,
                          const std::vector<std::string>& args,
                          storage::ByteStream& input, const OutputSink& out) {
  Child child;
  if (absl::Status st = Spawn(options, args, child); !st.ok()) return st;
  const auto deadline =
      Clock::now() + std::chrono::seconds(options.wall_seconds);
  std::string err;
  absl::Status why;
  bool finished = Pump(options, deadline, child, input, out, err, why);
  // Its output closed; it may still run (a hostile engine can close its
  // pipes and spin): wait for the exit, as long as the deadline allows.
  int status = 0;
  while (finished) {
    const pid_t r = waitpid(child.pid, &status, WNOHANG);
    if (r == child.pid) {
      child.reaped = true;
      break;
    }
    if (r < 0 && errno != EINTR) break;
    if (options.wall_seconds > 0 && Clock::now() >= deadline) {
      finished = false;
      why = WallClockError(options);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!child.reaped) {
    kill(-child.pid, SIGKILL);
    kill(child.pid, SIGKILL);
    while (waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
    }
    child.reaped = true;
  }
  if (!finished) return why;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return ExitError(options, status, err);
}

}  // namespace lethe::worker

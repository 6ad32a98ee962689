// Runs one call of the engine in a separate, confined process: `lethe-engine`
// (worker/engine_main.cc) reads the call on stdin and writes its reply on
// stdout. The process holds no keys and no database credentials: its
// environment holds only the numerical libraries' settings (OPENBLAS_*,
// OMP_*, MKL_*, CUDA_*...) and it inherits no descriptor but its pipes.
// Confinement (docs/security.md, "The engine sandbox"):
//
//   - kNamespaces (the default): bubblewrap gives it new user, PID, network,
//     IPC and UTS namespaces, a read-only view of /usr (and the paths in
//     `ro_paths` and LD_LIBRARY_PATH), an empty /tmp, no /home, /etc, /var or
//     /work, and no capabilities; it dies with the worker.
//   - kProcess: the same process and limits without namespaces, for hosts
//     where user namespaces are unavailable (some container runtimes).
//
// In both, resource limits set before exec (address space, CPU seconds,
// no file writes) and a wall-clock deadline enforced here, and the engine
// installs a seccomp filter before it touches the model (no open, socket,
// exec, ptrace or fork). A run over a limit fails with the limit named.
#ifndef LETHE_WORKER_ENGINE_SANDBOX_H_
#define LETHE_WORKER_ENGINE_SANDBOX_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/model_store.h"

namespace lethe::worker {

enum class Isolation { kNamespaces, kProcess };

struct SandboxOptions {
  std::string engine_binary;  // absolute path of lethe-engine
  std::string bwrap = "/usr/bin/bwrap";
  Isolation isolation = Isolation::kNamespaces;
  int64_t memory_bytes = int64_t{16} << 30;  // RLIMIT_AS; 0: no limit
  int64_t cpu_seconds = 0;                   // RLIMIT_CPU; 0: no limit
  int64_t wall_seconds = 3600;               // killed after; 0: no limit
  int64_t max_reply_bytes = int64_t{8} << 30;
  // Where the sandboxed engine spools a reply and the model file it
  // carries (empty: the system's temporary directory).
  std::string spool_dir;
  // Extra read-only paths visible inside (a LibTorch outside /usr, say).
  std::vector<std::string> ro_paths;
  // Device nodes bound inside (/dev/nvidia*, for CUDA).
  std::vector<std::string> devices;
};

// Parses "namespaces" or "process". INVALID_ARGUMENT otherwise.
absl::StatusOr<Isolation> ParseIsolation(std::string_view name);

// lethe-engine next to this process's executable.
std::string DefaultEngineBinary();

// FAILED_PRECONDITION when the options cannot work on this host (no engine
// binary, no bwrap for kNamespaces), saying what to install or set.
absl::Status CheckSandbox(const SandboxOptions& options);

// What `lethe-engine --probe` prints: NewSandboxedEngine starts it through
// the sandbox once, so that a host where the sandbox cannot run (no user
// namespaces for bubblewrap, say) stops the worker at start, not every job.
inline constexpr const char* kProbeReply = "lethe-engine ok\n";

// Where a run's stdout goes, as it arrives: an error stops the run (and is
// its error).
using OutputSink = std::function<absl::Status(std::string_view)>;

// Runs the engine binary with `args` on `input`, read from its current
// position and fed to the process 64 KiB at a time (a model file and a
// training set go from their spool files to the engine without being held
// here), and hands its stdout to `out` as it arrives (a model file it
// produced goes to a spool file the same way). Errors: DEADLINE_EXCEEDED
// past wall_seconds; RESOURCE_EXHAUSTED past the CPU limit or
// max_reply_bytes; INTERNAL when the process died or exited non-zero (with
// the tail of its stderr); a failure to read `input` or of `out` as
// itself; the process and everything it started are killed in every case.
absl::Status RunInSandbox(const SandboxOptions& options,
                          const std::vector<std::string>& args,
                          storage::ByteStream& input, const OutputSink& out);
// The same with stdout collected in memory (replies known to be small).
absl::StatusOr<std::string> RunInSandbox(const SandboxOptions& options,
                                         const std::vector<std::string>& args,
                                         storage::ByteStream& input);

}  // namespace lethe::worker

#endif  // LETHE_WORKER_ENGINE_SANDBOX_H_

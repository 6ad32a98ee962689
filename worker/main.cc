// `lethe-worker`: claims erasure tasks and model jobs from PostgreSQL and
// runs them on this machine's CPU or GPU (also started as `lethe worker`).
//
// SIGTERM/SIGINT: stop claiming; a running batch may finish within
// --drain-seconds, after which it is released to the queue and the process
// exits. A killed worker's lease expires after --lease-seconds and another
// worker redoes the attempt.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/config.h"
#include "base/status_macros.h"
#include "cert/keys.h"
#include "observability/log.h"
#include "observability/metrics.h"
#include "observability/worker_metrics.h"
#include "storage/postgres/migrations.h"
#include "storage/reachability.h"
#include "worker/engine/sandbox.h"
#include "worker/worker.h"

namespace lethe::worker {
namespace {

using base::Config;
using base::OptionSpec;

const std::vector<OptionSpec>& Options() {
  // Each default is the WorkerOptions field the option sets (worker.h):
  // the defaults are written once, there.
  static const WorkerOptions d;
  static const auto* specs = new std::vector<OptionSpec>{
      {"database-url", d.database_url, "libpq URL of PostgreSQL"},
      {"artifact-dir", d.artifact_dir,
       "shared directory for model artifacts (empty: "
       "PostgreSQL)"},
      {"scratch-dir", d.scratch_dir,
       "where a run's training set and model files are spooled for the "
       "engine (empty: the system's temporary directory; needs room for the "
       "largest training set, about its raw size, and two model files, per "
       "concurrent run)"},
      {"device", d.device, "cpu, cuda:N, or auto (CUDA when available)"},
      {"threads", absl::StrCat(d.threads),
       "LibTorch threads per engine run (0: all cores)"},
      {"concurrency", absl::StrCat(d.concurrency), "engine runs at once"},
      {"engine", d.engine,
       "sandbox (each engine call in a confined lethe-engine process) or "
       "in-process (trusted models only)"},
      {"engine-binary", "", "lethe-engine's path (empty: beside lethe-worker)"},
      {"engine-isolation", "namespaces",
       "namespaces (bubblewrap) or process (limits and seccomp only, where "
       "user namespaces are unavailable)"},
      {"engine-memory-mb", absl::StrCat(d.sandbox.memory_bytes >> 20),
       "address-space limit of an engine process (0: none; CUDA: none)"},
      {"engine-cpu-seconds", absl::StrCat(d.sandbox.cpu_seconds),
       "CPU-time limit of an engine run (0: none)"},
      {"engine-wall-seconds", absl::StrCat(d.sandbox.wall_seconds),
       "wall-clock limit of an engine run (0: none)"},
      {"lease-seconds", absl::StrCat(d.lease.count()),
       "lease length; renewed every third of it"},
      {"batch-size", absl::StrCat(d.default_batch),
       "tasks per batch when the policy sets none"},
      {"max-batch-size", absl::StrCat(d.max_batch),
       "cap on any policy's batch size"},
      {"retry-base-seconds", absl::StrCat(d.retry_base_seconds),
       "first retry delay (doubles per attempt)"},
      {"retry-max-seconds", absl::StrCat(d.retry_max_seconds),
       "longest retry delay"},
      {"max-lost-leases", absl::StrCat(d.max_lost_leases),
       "expired leases (workers killed or cut off "
       "from the database) a task survives before "
       "its request fails; not counted as failures"},
      {"poll-seconds",
       absl::StrCat(std::chrono::duration<double>(d.poll).count()),
       "fallback poll when no notification arrives"},
      {"drain-seconds", "30",
       "on SIGTERM, how long a running batch may "
       "finish before it is released"},
      {"exit-when-idle", d.exit_when_idle ? "true" : "false",
       "exit once no work is left"},
      {"migrate-on-start", "true", "apply schema migrations at start"},
      {"signing-keys", "",
       "comma-separated PEM private keys that sign "
       "completion certificates and log checkpoints"},
      {"log-origin", d.log_origin,
       "origin line of the certificate log's checkpoints (the same for "
       "every worker; keep it stable)"},
      {"metrics-listen", "",
       "serve Prometheus /metrics on host:port "
       "(empty: off)"},
      {"log-level", "info", "debug, info, warn or error"},
  };
  return *specs;
}

// The operator's terminal: a database error's detail included.
int Fail(const absl::Status& st) {
  std::cerr << "lethe-worker: " << absl::StatusCodeToString(st.code()) << ": "
            << storage::ErrorDetail(st) << "\n";
  return st.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

absl::StatusOr<WorkerOptions> FromConfig(const Config& cfg) {
  WorkerOptions o;
  o.database_url = cfg.Get("database-url");
  o.artifact_dir = cfg.Get("artifact-dir");
  o.scratch_dir = cfg.Get("scratch-dir");
  o.device = cfg.Get("device");
  o.engine = cfg.Get("engine");
  o.sandbox.engine_binary = cfg.Get("engine-binary");
  LETHE_ASSIGN_OR_RETURN(o.sandbox.isolation,
                         ParseIsolation(cfg.Get("engine-isolation")));
  for (auto [name, out, max] :
       {std::tuple<const char*, int64_t*, int64_t>{
            "engine-memory-mb", &o.sandbox.memory_bytes, int64_t{1} << 24},
        {"engine-cpu-seconds", &o.sandbox.cpu_seconds, int64_t{1} << 30},
        {"engine-wall-seconds", &o.sandbox.wall_seconds, int64_t{1} << 30}}) {
    LETHE_ASSIGN_OR_RETURN(const double v, cfg.GetDouble(name));
    if (v < 0 || v > static_cast<double>(max)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " must be in [0, ", max, "]"));
    }
    *out = static_cast<int64_t>(v);
  }
  o.sandbox.memory_bytes <<= 20;
  for (auto [name, out] : {std::pair<const char*, int*>{"threads", &o.threads},
                           {"concurrency", &o.concurrency},
                           {"batch-size", &o.default_batch},
                           {"max-batch-size", &o.max_batch}}) {
    LETHE_ASSIGN_OR_RETURN(*out, cfg.GetInt(name));
  }
  LETHE_ASSIGN_OR_RETURN(const int lease, cfg.GetInt("lease-seconds"));
  if (lease < 3 || o.concurrency < 1) {
    return absl::InvalidArgumentError(
        "--lease-seconds must be >= 3 and --concurrency >= 1");
  }
  o.lease = std::chrono::seconds(lease);
  LETHE_ASSIGN_OR_RETURN(o.retry_base_seconds,
                         cfg.GetDouble("retry-base-seconds"));
  LETHE_ASSIGN_OR_RETURN(o.retry_max_seconds,
                         cfg.GetDouble("retry-max-seconds"));
  LETHE_ASSIGN_OR_RETURN(o.max_lost_leases, cfg.GetInt("max-lost-leases"));
  if (o.max_lost_leases < 1) {
    return absl::InvalidArgumentError("--max-lost-leases must be >= 1");
  }
  LETHE_ASSIGN_OR_RETURN(const double poll, cfg.GetDouble("poll-seconds"));
  o.poll = std::chrono::milliseconds(static_cast<int64_t>(poll * 1000));
  o.exit_when_idle = cfg.GetBool("exit-when-idle");
  if (const char* fault = std::getenv("LETHE_FAULT_POINT"))
    o.fault_point = fault;
  auto level = observability::ParseLogLevel(cfg.Get("log-level"));
  if (!level.ok()) return level.status();
  o.logger = std::make_shared<const observability::Logger>(
      observability::Logger::Stderr(*level, "worker"));
  o.log_origin = cfg.Get("log-origin");
  if (o.log_origin.empty() || absl::StrContains(o.log_origin, "\n")) {
    return absl::InvalidArgumentError(
        "--log-origin must be one non-empty line");
  }
  if (!cfg.Get("signing-keys").empty()) {
    std::vector<std::string> files =
        absl::StrSplit(cfg.Get("signing-keys"), ',');
    auto keys = cert::KeyRing::LoadFiles(files);
    if (!keys.ok()) return keys.status();
    o.signing_keys = std::make_shared<const cert::KeyRing>(std::move(*keys));
  }
  return o;
}

// Applies the migrations (or checks that none is pending, without
// --migrate-on-start),
// retrying with backoff while PostgreSQL cannot be reached, each try a
// warning: a worker started before its database, or during a restart of
// it, waits instead of exiting. UNAVAILABLE: a stop signal came first.
absl::Status WaitForDatabase(const WorkerOptions& o, bool migrate,
                             const sigset_t& stop) {
  storage::Database db({o.database_url, 1, 30});
  const std::string database = storage::RedactedDatabaseUrl(o.database_url);
  return storage::RetryWhileUnavailable(
      [&] {
        return migrate ? storage::Migrate(db).status()
                       : storage::CheckSchemaCurrent(db);
      },
      [&](const absl::Status& st, int attempt,
          std::chrono::milliseconds delay) {
        o.logger->Warn({}, "database not ready; waiting",
                       {{"attempt", attempt},
                        {"retry_in_seconds", delay.count() / 1000.0},
                        {"database", database},
                        {"error", storage::ErrorDetail(st)}});
        const timespec wait{delay.count() / 1000,
                            (delay.count() % 1000) * 1000 * 1000};
        return sigtimedwait(&stop, nullptr, &wait) < 0;
      });
}

int Main(int argc, char** argv) {
  // libgomp reads OMP_WAIT_POLICY when it is loaded, before main, so
  // core::InitRuntime's setenv comes too late: with spinning OpenMP threads
  // fighting OpenBLAS's, training ran ~3x slower on 2 cores (measured by
  // bench/engine). Set it and start again; if exec fails, run on.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "worker") args.erase(args.begin());
  auto cfg = Config::Parse(Options(), args);
  if (!cfg.ok()) return Fail(cfg.status());
  if (cfg->help_requested()) {
    std::cout << "usage: lethe-worker [options]\n\noptions (flag, environment "
                 "variable, default):\n"
              << Config::Usage(Options());
    return 0;
  }
  auto options = FromConfig(*cfg);
  if (!options.ok()) return Fail(options.status());
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  // Blocked before our threads start, so they inherit the mask. (Threads
  // that libraries start before main, such as OpenBLAS's, do not: no other
  // signal is used to wake main.)
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  // Bind the metrics port before any outgoing connection could take it.
  auto registry = std::make_shared<prometheus::Registry>();
  observability::WorkerMetrics metrics(*registry);
  std::unique_ptr<observability::MetricsEndpoint> endpoint;
  if (!cfg->Get("metrics-listen").empty()) {
    auto http =
        observability::MetricsEndpoint::Start(cfg->Get("metrics-listen"));
    if (!http.ok()) return Fail(http.status());
    endpoint = std::move(*http);
    endpoint->Register(registry);
  }
  if (auto st =
          WaitForDatabase(*options, cfg->GetBool("migrate-on-start"), stop);
      !st.ok()) {
    return absl::IsUnavailable(st) ? 0 : Fail(st);
  }
  options->metrics = &metrics;
  Worker worker(*options);
  absl::Status result;
  std::atomic<bool> finished{false};
  std::thread runner([&] {
    result = worker.Run();
    finished = true;
  });
  const timespec tick{0, 200L * 1000 * 1000};
  while (!finished && sigtimedwait(&stop, nullptr, &tick) < 0) {
  }
  if (!finished) {
    worker.Stop();
    auto drain = cfg->GetInt("drain-seconds");
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::seconds(drain.ok() ? *drain : 30);
    while (!finished && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!finished) {
      worker.ReleaseInFlight();
      options->logger->Warn({}, "drain deadline passed; exiting");
      _exit(0);
    }
  }
  runner.join();
  return result.ok() ? 0 : Fail(result);
}

}  // namespace
}  // namespace lethe::worker

int main(int argc, char** argv) { return lethe::worker::Main(argc, argv); }

// `lethe`: the server and its admin commands.
//
//   lethe serve                 run the gRPC server (drains on SIGTERM)
//   lethe migrate               apply schema migrations and exit
//   lethe admin create-key --role R [--description D] [--datasets ID,...]
//   lethe admin revoke-key KEY_ID
//   lethe admin create-secret   write a fresh subject-key secret file
//   lethe admin create-signing-key --out PREFIX [--name N]
//
// Every option is also read from LETHE_<NAME> and from --config FILE.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "base/config.h"
#include "base/status_macros.h"
#include "cert/keys.h"
#include "observability/log.h"
#include "observability/metrics.h"
#include "observability/queue_collector.h"
#include "server/server.h"
#include "server/subject.h"
#include "storage/api_key_store.h"
#include "storage/postgres/backend.h"
#include "storage/postgres/migrations.h"
#include "storage/reachability.h"

namespace lethe::server {
namespace {

using base::Config;
using base::OptionSpec;

// The resource limits (issue 17, items 3 and 4), defaults from `d`.
std::vector<OptionSpec> LimitOptions(const ServerOptions& d) {
  return {
      {"rate-limit-per-key", absl::StrCat(d.rate_limit_per_key),
       "calls a second one API key may make (bursts of twice that); 0: no "
       "limit"},
      {"auth-failures-per-peer", absl::StrCat(d.auth_failures_per_peer),
       "failed authentications a second one client address may make before "
       "its unverified calls are refused (behind a proxy: the proxy's); 0: "
       "no limit"},
      {"max-queued-calls", absl::StrCat(d.max_queued_calls),
       "calls waiting for a handler thread before new ones get "
       "RESOURCE_EXHAUSTED; 0: no limit"},
      {"max-watches-per-key", absl::StrCat(d.max_watches_per_key),
       "open WatchErasure streams per API key; 0: no limit"},
      {"max-upload-bytes", absl::StrCat(d.limits.max_upload_bytes),
       "size limit of one upload as sent, and of each of its parts "
       "decompressed"},
      {"max-upload-records", absl::StrCat(d.limits.max_upload_records),
       "records in one upload at most"},
      {"max-upload-expansion", absl::StrCat(d.limits.max_upload_expansion),
       "decompressed bytes per gzip byte at most (checked past 1 MiB); 0: "
       "no limit"},
      {"max-spooled-bytes", absl::StrCat(d.limits.max_spooled_bytes),
       "bytes of uploads and model files all calls in flight hold in spool "
       "files on disk together; 0: no limit"},
      {"max-artifact-bytes", absl::StrCat(d.limits.max_artifact_bytes),
       "size limit of one model file"},
  };
}

std::vector<OptionSpec> GeneralOptions(const ServerOptions& d) {
  return {
      {"database-url", d.database_url, "libpq URL of the PostgreSQL database"},
      {"listen", d.listen, "gRPC listen address host:port"},
      {"secrets-file", d.secrets_file,
       "file holding the server secret that keys subject ids (32+ bytes)"},
      {"db-pool-size", absl::StrCat(d.db_pool_size),
       "PostgreSQL connections per process"},
      {"handler-threads", absl::StrCat(d.handler_threads),
       "threads running request handlers"},
      {"intake-max-batch", absl::StrCat(d.intake.max_batch),
       "most erasure submissions written by one batch"},
      {"intake-concurrent-batches",
       absl::StrCat(d.intake.max_concurrent_batches),
       "submission batches in the database at once (each on its own "
       "connection)"},
      {"artifact-dir", d.artifact_dir,
       "store model artifacts in this shared directory instead of "
       "PostgreSQL"},
      {"spool-dir", d.spool_dir,
       "directory for uploads and model files as they arrive (unlinked "
       "temporary files); empty: $TMPDIR or /tmp"},
      {"migrate-on-start", d.migrate_on_start ? "true" : "false",
       "apply schema migrations at start"},
      {"tls-cert", "", "PEM server certificate (enables TLS)"},
      {"tls-key", "", "PEM private key of --tls-cert"},
      {"tls-client-ca", "", "PEM CA bundle; require client certificates"},
      {"insecure-plaintext", "false",
       "serve plaintext gRPC instead of TLS, on a loopback --listen only "
       "(local development, tests)"},
      {"insecure-plaintext-non-loopback", "false",
       "with --insecure-plaintext: allow any --listen address (only behind "
       "a proxy that terminates TLS on a trusted network)"},
      {"shutdown-grace-seconds", "30",
       "on SIGTERM, how long in-flight calls may finish"},
      {"key-cache-seconds", absl::StrCat(d.key_cache_ttl.count()),
       "how long a verified API key is trusted without a database lookup: "
       "a revoked key works up to this long (0: look up every call)"},
      {"metrics-listen", "",
       "serve Prometheus /metrics on host:port (e.g. 127.0.0.1:9464); "
       "empty: no endpoint"},
      {"log-level", "info", "least severe log level: debug|info|warn|error"},
      {"role", "", "admin create-key: submitter|operator|auditor|admin"},
      {"description", "", "admin create-key: what the key is for"},
      {"datasets", "",
       "admin create-key: comma-separated dataset ids a submitter key may "
       "erase from (empty: every dataset)"},
      {"public-keys", "",
       "comma-separated PEM Ed25519 public key files (.pub) of the workers' "
       "signing keys, retired ones included: served to verifiers by "
       "GetPublicKeys"},
      {"signing-keys", "",
       "refused: the server holds no private key (give the workers the "
       "keys, the server --public-keys)"},
      {"out", "",
       "admin create-signing-key: writes OUT.key (0600) and OUT.pub"},
      {"name", "lethe",
       "admin create-signing-key: checkpoint key name (no spaces or '+')"},
  };
}

// Each option's default is the ServerOptions field it sets (server.h): the
// defaults are written once, there.
const std::vector<OptionSpec>& Options() {
  static const auto* specs = [] {
    const ServerOptions d;
    auto* all = new std::vector<OptionSpec>(GeneralOptions(d));
    const std::vector<OptionSpec> limits = LimitOptions(d);
    all->insert(all->end(), limits.begin(), limits.end());
    return all;
  }();
  return *specs;
}

void PrintUsage() {
  std::cout << "usage: lethe COMMAND [options]\n\n"
               "commands:\n"
               "  serve                       run the gRPC server\n"
               "  migrate                     apply schema migrations\n"
               "  admin create-key --role R [--datasets ID,...]\n"
               "                              create an API key (printed "
               "once)\n"
               "  admin revoke-key KEY_ID     revoke an API key\n"
               "  admin create-secret         create the --secrets-file\n"
               "  admin create-signing-key --out PREFIX [--name N]\n"
               "                              create an Ed25519 signing key\n"
               "  version                     print the version\n\n"
               "options (flag, environment variable, default):\n"
            << Config::Usage(Options());
}

// The operator's terminal: a database error's detail included.
int Fail(const absl::Status& st) {
  std::cerr << "lethe: " << absl::StatusCodeToString(st.code()) << ": "
            << storage::ErrorDetail(st) << "\n";
  return st.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

absl::StatusOr<ServerOptions> ServerOptionsFrom(const Config& cfg) {
  ServerOptions o;
  o.listen = cfg.Get("listen");
  o.database_url = cfg.Get("database-url");
  o.secrets_file = cfg.Get("secrets-file");
  LETHE_ASSIGN_OR_RETURN(o.db_pool_size, cfg.GetInt("db-pool-size"));
  LETHE_ASSIGN_OR_RETURN(o.handler_threads, cfg.GetInt("handler-threads"));
  LETHE_ASSIGN_OR_RETURN(o.intake.max_batch, cfg.GetInt("intake-max-batch"));
  LETHE_ASSIGN_OR_RETURN(o.intake.max_concurrent_batches,
                         cfg.GetInt("intake-concurrent-batches"));
  if (o.intake.max_batch < 1 || o.intake.max_concurrent_batches < 1 ||
      o.intake.max_concurrent_batches >= o.db_pool_size) {
    return absl::InvalidArgumentError(
        "--intake-max-batch and --intake-concurrent-batches must be at least "
        "1, and --intake-concurrent-batches below --db-pool-size");
  }
  o.artifact_dir = cfg.Get("artifact-dir");
  o.spool_dir = cfg.Get("spool-dir");
  o.migrate_on_start = cfg.GetBool("migrate-on-start");
  o.tls_cert_file = cfg.Get("tls-cert");
  o.tls_key_file = cfg.Get("tls-key");
  o.tls_client_ca_file = cfg.Get("tls-client-ca");
  o.insecure_plaintext = cfg.GetBool("insecure-plaintext");
  o.insecure_plaintext_non_loopback =
      cfg.GetBool("insecure-plaintext-non-loopback");
  LETHE_ASSIGN_OR_RETURN(const int64_t key_cache,
                         cfg.GetInt64("key-cache-seconds"));
  if (key_cache < 0 || key_cache > 3600) {
    return absl::InvalidArgumentError(
        "--key-cache-seconds must be in [0, 3600]");
  }
  o.key_cache_ttl = std::chrono::seconds(key_cache);
  LETHE_ASSIGN_OR_RETURN(o.rate_limit_per_key,
                         cfg.GetDouble("rate-limit-per-key"));
  LETHE_ASSIGN_OR_RETURN(o.auth_failures_per_peer,
                         cfg.GetDouble("auth-failures-per-peer"));
  LETHE_ASSIGN_OR_RETURN(o.max_queued_calls, cfg.GetInt("max-queued-calls"));
  LETHE_ASSIGN_OR_RETURN(o.max_watches_per_key,
                         cfg.GetInt("max-watches-per-key"));
  if (o.rate_limit_per_key < 0 || o.auth_failures_per_peer < 0 ||
      o.max_queued_calls < 0 || o.max_watches_per_key < 0) {
    return absl::InvalidArgumentError(
        "--rate-limit-per-key, --auth-failures-per-peer, --max-queued-calls "
        "and --max-watches-per-key must be >= 0 (0: no limit)");
  }
  LETHE_ASSIGN_OR_RETURN(o.limits.max_upload_bytes,
                         cfg.GetInt64("max-upload-bytes"));
  LETHE_ASSIGN_OR_RETURN(o.limits.max_artifact_bytes,
                         cfg.GetInt64("max-artifact-bytes"));
  LETHE_ASSIGN_OR_RETURN(o.limits.max_upload_records,
                         cfg.GetInt64("max-upload-records"));
  LETHE_ASSIGN_OR_RETURN(o.limits.max_upload_expansion,
                         cfg.GetDouble("max-upload-expansion"));
  LETHE_ASSIGN_OR_RETURN(o.limits.max_spooled_bytes,
                         cfg.GetInt64("max-spooled-bytes"));
  if (o.limits.max_upload_bytes < 1 || o.limits.max_artifact_bytes < 1 ||
      o.limits.max_upload_records < 1) {
    return absl::InvalidArgumentError(
        "--max-upload-bytes, --max-artifact-bytes and --max-upload-records "
        "must be >= 1");
  }
  if (!(o.limits.max_upload_expansion >= 0) || o.limits.max_spooled_bytes < 0) {
    return absl::InvalidArgumentError(
        "--max-upload-expansion and --max-spooled-bytes must be >= 0 (0: no "
        "limit)");
  }
  if (!cfg.Get("signing-keys").empty()) {
    return absl::InvalidArgumentError(
        "lethe serve holds no private key: give the .key files to the "
        "workers (lethe-worker --signing-keys), which sign certificates and "
        "checkpoints, and their .pub files to the server (--public-keys)");
  }
  o.public_key_files =
      absl::StrSplit(cfg.Get("public-keys"), ',', absl::SkipWhitespace());
  return o;
}

// The /metrics endpoint and what it serves besides the registry: the queue
// gauges, read on scrape from the server's backend (on a connection of
// their own), registered once the server runs.
struct Metrics {
  std::unique_ptr<observability::DatabaseMetrics> errors;
  std::shared_ptr<observability::QueueCollector> queue;
  std::unique_ptr<observability::MetricsEndpoint> http;
};

absl::StatusOr<Metrics> StartMetrics(
    const Config& cfg, const std::shared_ptr<prometheus::Registry>& registry) {
  Metrics m;
  if (cfg.Get("metrics-listen").empty()) return m;
  auto http = observability::MetricsEndpoint::Start(cfg.Get("metrics-listen"));
  if (!http.ok()) return http.status();
  m.http = std::move(*http);
  m.errors = std::make_unique<observability::DatabaseMetrics>(*registry);
  m.http->Register(registry);
  return m;
}

void AddQueueGauges(Metrics& m, storage::Backend* backend) {
  if (!m.http) return;
  m.queue =
      std::make_shared<observability::QueueCollector>(backend, m.errors.get());
  m.http->Register(m.queue);
}

int Serve(const Config& cfg) {
  // Block the stop signals in every thread; main waits for them below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto options = ServerOptionsFrom(cfg);
  if (!options.ok()) return Fail(options.status());
  auto grace = cfg.GetInt("shutdown-grace-seconds");
  if (!grace.ok()) return Fail(grace.status());
  auto level = observability::ParseLogLevel(cfg.Get("log-level"));
  if (!level.ok()) return Fail(level.status());
  auto log = std::make_shared<observability::Logger>(
      observability::Logger::Stderr(*level, "server"));
  auto registry = std::make_shared<prometheus::Registry>();
  options->logger = log;
  options->metrics_registry = registry;
  auto metrics = StartMetrics(cfg, registry);
  if (!metrics.ok()) return Fail(metrics.status());
  if (metrics->http) {
    log->Info({}, "metrics listening", {{"port", metrics->http->port()}});
  }
  auto server = LetheServer::Start(*options);
  if (!server.ok()) return Fail(server.status());
  AddQueueGauges(*metrics, (*server)->backend());
  log->Info({}, "listening", {{"port", (*server)->port()}});
  int sig = 0;
  sigwait(&stop, &sig);
  log->Info({}, "draining", {{"signal", sig}});
  (*server)->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(*grace));
  (*server)->Wait();
  log->Info({}, "stopped");
  return 0;
}

int Migrate(const Config& cfg) {
  storage::Database db({cfg.Get("database-url"), 1, 30});
  auto result = storage::Migrate(db);
  if (!result.ok()) return Fail(result.status());
  std::cout << "schema at version " << result->to_version << " (was "
            << result->from_version << "; applied " << result->applied.size()
            << ")\n";
  return 0;
}

// Writes OUT.key and OUT.pub; the key id identifies it in certificates.
int CreateSigningKey(const Config& cfg) {
  if (cfg.Get("out").empty()) {
    return Fail(absl::InvalidArgumentError(
        "admin create-signing-key needs --out PREFIX"));
  }
  cert::KeyInfo info;
  info.name = cfg.Get("name");
  auto key = cert::GenerateKeyFiles(cfg.Get("out"), info);
  if (!key.ok()) return Fail(key.status());
  std::cout << key->public_key().key_id() << "\n";
  std::cerr << "wrote " << cfg.Get("out") << ".key and " << cfg.Get("out")
            << ".pub; give auditors the .pub\n";
  return 0;
}

int Admin(const Config& cfg) {
  const auto& args = cfg.positional();
  if (args.size() < 2) {
    PrintUsage();
    return 2;
  }
  const std::string& what = args[1];
  if (what == "create-secret") {
    auto st = CreateServerSecret(cfg.Get("secrets-file"));
    if (!st.ok()) return Fail(st);
    std::cout << "wrote " << cfg.Get("secrets-file") << "\n";
    return 0;
  }
  if (what == "create-signing-key") return CreateSigningKey(cfg);
  auto backend =
      storage::OpenPostgres({.url = cfg.Get("database-url"), .pool_size = 1});
  if (auto migrated = backend->Prepare(/*migrate=*/true); !migrated.ok()) {
    return Fail(migrated);
  }
  storage::ApiKeyStore& keys = backend->api_keys();
  if (what == "create-key") {
    auto role = storage::ParseRole(cfg.Get("role"));
    if (!role) {
      return Fail(absl::InvalidArgumentError(
          "--role must be submitter, operator, auditor or admin"));
    }
    storage::ApiKeySpec spec{
        *role, cfg.Get("description"),
        absl::StrSplit(cfg.Get("datasets"), ',', absl::SkipWhitespace())};
    auto key = keys.Create(spec, "admin-cli");
    if (!key.ok()) return Fail(key.status());
    std::cout << key->token << "\n";
    std::cerr << "created " << storage::RoleName(*role) << " key "
              << key->key_id
              << (spec.dataset_ids.empty()
                      ? ""
                      : absl::StrCat(" for datasets ",
                                     absl::StrJoin(spec.dataset_ids, ",")))
              << "; the token above is shown only once\n";
    return 0;
  }
  if (what == "revoke-key" && args.size() == 3) {
    auto st = keys.Revoke(args[2], "admin-cli");
    if (!st.ok()) return Fail(st);
    std::cout << "revoked " << args[2] << "\n";
    return 0;
  }
  PrintUsage();
  return 2;
}

int Main(int argc, char** argv) {
  // Debian's Abseil is built with assertions on, which turns on absl::Mutex
  // deadlock detection (a lock-order graph updated on every lock gRPC
  // takes: about 4% of the server's CPU under intake load). It is a
  // debugging aid, not something a production server should pay for.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::vector<std::string> args(argv + 1, argv + argc);
  auto cfg = Config::Parse(Options(), args);
  if (!cfg.ok()) return Fail(cfg.status());
  const auto& pos = cfg->positional();
  if (cfg->help_requested() || pos.empty()) {
    PrintUsage();
    return pos.empty() && !cfg->help_requested() ? 2 : 0;
  }
  const std::string& command = pos[0];
  if (command == "serve") return Serve(*cfg);
  if (command == "migrate") return Migrate(*cfg);
  if (command == "admin") return Admin(*cfg);
  if (command == "version") {
    std::cout << "lethe 0.1.0\n";
    return 0;
  }
  std::cerr << "lethe: unknown command '" << command << "'\n";
  PrintUsage();
  return 2;
}

}  // namespace
}  // namespace lethe::server

int main(int argc, char** argv) { return lethe::server::Main(argc, argv); }

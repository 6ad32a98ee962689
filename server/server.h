// LetheServer: the stateless gRPC front end. Everything it knows lives in
// PostgreSQL, so any number of replicas can serve one database, and a
// killed replica loses nothing it acknowledged.
#ifndef LETHE_SERVER_SERVER_H_
#define LETHE_SERVER_SERVER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "observability/log.h"
#include "observability/metrics.h"
#include "server/deps.h"
#include "storage/backend.h"

namespace prometheus {
class Registry;
}

namespace lethe::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks one
  std::string database_url = "postgresql:///lethe";
  std::string secrets_file = ".lethe/secret";  // the subject-key HMAC secret
  int db_pool_size = 16;
  int handler_threads = 16;
  // Group commit of SubmitErasure (storage/erasure_store.h).
  storage::ErasureStoreOptions intake;
  std::string artifact_dir;  // empty: artifacts in PostgreSQL
  // Where model registrations spool artifacts as they arrive (empty: the
  // system's temporary directory).
  std::string spool_dir;
  bool migrate_on_start = true;
  // TLS: both set to serve TLS; client CA set to require client
  // certificates (mTLS). Without them the server refuses to start unless
  // insecure_plaintext is set, and then only on a loopback address unless
  // insecure_plaintext_non_loopback is set too: API keys, subject ids and
  // salts would cross the network in clear.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  bool insecure_plaintext = false;
  bool insecure_plaintext_non_loopback = false;
  std::chrono::milliseconds health_interval{1000};
  std::chrono::milliseconds watch_poll{2000};
  std::chrono::seconds key_cache_ttl{30};
  // Resource limits (issue 17, item 4; 0: none). Calls a second per API
  // key (a bucket of two seconds' worth); failed authentications a second
  // per client address (behind a proxy, the proxy's: size it, or 0); calls
  // waiting for a handler thread before new ones are refused; open
  // WatchErasure streams per key. Over a limit: RESOURCE_EXHAUSTED.
  double rate_limit_per_key = 1000;
  double auth_failures_per_peer = 20;
  int max_queued_calls = 4096;
  int max_watches_per_key = 64;
  Limits limits;
  // gRPC and database metrics go here when set (shared with the process's
  // /metrics endpoint; see observability/metrics.h); null: no metrics.
  std::shared_ptr<prometheus::Registry> metrics_registry;
  // Where lines go; null: JSON lines on stderr at info level.
  std::shared_ptr<observability::Logger> logger;
  // PEM public key files (.pub) of the workers' signing keys, retired ones
  // included, served by GetPublicKeys. The server holds no private key:
  // workers sign certificates and checkpoints (issue 17, item 8); the
  // server serves what they stored.
  std::vector<std::string> public_key_files;
};

// True when `listen` (host:port, or unix:PATH) only accepts local
// connections: a 127.0.0.0/8 or ::1 address, "localhost", or a Unix socket.
// 0.0.0.0, [::] and every other host are not.
bool IsLoopbackListen(const std::string& listen);

class LetheServer {
 public:
  // Opens the database (migrating it unless told not to) and starts
  // listening. When PostgreSQL cannot be reached it listens all the same:
  // health is NOT_SERVING and every API call answers UNAVAILABLE ("database
  // unavailable; retry with backoff") while a background thread retries
  // (0.5 s doubling to 10 s, each try a warning in the log); once the
  // migrations ran the API opens on the same port and health turns
  // SERVING. Errors: bad options, unreadable files, a migration that fails
  // for another reason than an unreachable database, a port it cannot bind.
  // Serves `options.database_url` (storage::OpenPostgres with the pool,
  // artifact directory and intake options above).
  static absl::StatusOr<std::unique_ptr<LetheServer>> Start(
      const ServerOptions& options);
  // Serves `backend` (e.g. storage/memory's, in tests); database_url is
  // then only named in logs. `intake_metrics`, when set, is the one the
  // backend's intake reports to: the server keeps it alive.
  static absl::StatusOr<std::unique_ptr<LetheServer>> Start(
      const ServerOptions& options, std::shared_ptr<storage::Backend> backend,
      std::unique_ptr<observability::IntakeMetrics> intake_metrics = nullptr);
  ~LetheServer();

  // The backend it serves; lives as long as the server.
  storage::Backend* backend() const;

  int port() const { return port_; }
  // Stops accepting calls (and waiting for the database), lets in-flight
  // calls finish until `deadline`, then cancels the rest. Idempotent.
  void Shutdown(std::chrono::system_clock::time_point deadline);
  // Blocks until Shutdown has run and the last call finished.
  void Wait();

 private:
  struct Impl;
  explicit LetheServer(std::unique_ptr<Impl> impl);
  absl::Status PrepareDatabase();  // migrations, or a ping without them
  absl::Status OpenWaiting();      // health NOT_SERVING, API UNAVAILABLE
  void BuildApi();                 // the services, once
  absl::Status Listen(const std::string& listen);  // serves the API
  // Retries PrepareDatabase with backoff, then swaps the waiting server for
  // the API. False when Shutdown came first.
  bool WaitForDatabase(const absl::Status& first);
  void HealthLoop();
  bool SleepUnlessStopping(std::chrono::milliseconds delay);

  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  // WaitForDatabase (when needed), then HealthLoop, until Shutdown.
  std::thread background_;
  std::mutex mu_;
  std::condition_variable shut_down_cv_;
  bool shut_down_ = false;  // guarded by mu_
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_SERVER_H_

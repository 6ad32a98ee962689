// LetheServer: the stateless gRPC front end. Everything it knows lives in
// PostgreSQL, so any number of replicas can serve one database, and a
// killed replica loses nothing it acknowledged.
#ifndef LETHE_SERVER_SERVER_H_
#define LETHE_SERVER_SERVER_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "observability/log.h"
#include "server/deps.h"

namespace prometheus {
class Registry;
}

namespace lethe::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks one
  std::string database_url;
  std::string secrets_file;  // the subject-key HMAC secret
  int db_pool_size = 16;
  int handler_threads = 16;
  // Group commit of SubmitErasure (storage/erasure_store.h).
  storage::ErasureStoreOptions intake;
  std::string artifact_dir;  // empty: artifacts in PostgreSQL
  bool migrate_on_start = true;
  // TLS: both set to serve TLS; client CA set to require client
  // certificates (mTLS).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  std::chrono::milliseconds health_interval{1000};
  std::chrono::milliseconds watch_poll{2000};
  std::chrono::seconds key_cache_ttl{30};
  Limits limits;
  // gRPC and database metrics go here when set (shared with the process's
  // /metrics endpoint; see observability/metrics.h); null: no metrics.
  std::shared_ptr<prometheus::Registry> metrics_registry;
  // Where lines go; null: JSON lines on stderr at info level.
  std::shared_ptr<observability::Logger> logger;
  // PEM private key files that sign the log's checkpoints (cert/keys.h);
  // configure the same files as the workers, which sign certificates with
  // them. Empty: the certificate service still serves certificates, proofs
  // and stored checkpoints, but cannot sign a checkpoint of a grown log.
  std::vector<std::string> signing_key_files;
  // The checkpoints' origin line (C2SP tlog-checkpoint): the log's name.
  std::string log_origin = "lethe.local/erasure-log";
};

class LetheServer {
 public:
  // Opens the database (migrating it unless told not to), then starts
  // listening. UNAVAILABLE if PostgreSQL cannot be reached at start.
  static absl::StatusOr<std::unique_ptr<LetheServer>> Start(
      const ServerOptions& options);
  ~LetheServer();

  int port() const { return port_; }
  // Stops accepting calls, lets in-flight calls finish until `deadline`,
  // then cancels the rest. Idempotent.
  void Shutdown(std::chrono::system_clock::time_point deadline);
  void Wait();

 private:
  struct Impl;
  explicit LetheServer(std::unique_ptr<Impl> impl);
  void HealthLoop();

  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread health_thread_;
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_SERVER_H_

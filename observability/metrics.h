// Prometheus metrics for lethe processes: the HTTP endpoint that serves a
// process's registry, and the families that both the server and workers
// report. One prometheus::Registry per process, created in main and passed
// down; nothing here is global.
//
// Naming follows https://prometheus.io/docs/practices/naming/: a `lethe_`
// prefix (gRPC families keep go-grpc-prometheus' names so existing
// dashboards work), base units (`_seconds`, ratios in 0..1), `_total` on
// counters. Labels never carry a data-subject id, a request id or any other
// unbounded value: each label's values are a small fixed set or bounded by
// the number of registered models. docs/operations.md lists every family.
//
// The worker's families are in worker_metrics.h, the gRPC interceptor in
// grpc_metrics.h, the queue gauges (read from PostgreSQL) in
// queue_collector.h.
#ifndef LETHE_OBSERVABILITY_METRICS_H_
#define LETHE_OBSERVABILITY_METRICS_H_

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/status/statusor.h"

namespace lethe::observability {

// Serves GET /metrics over plain HTTP/1.1 on `listen` (host:port; port 0
// picks a free one) with the samples of every registered collectable, in
// Prometheus' text format 0.0.4. One connection at a time, closed after each
// response, 5 s to read a request: enough for scrapers and a curl.
//
// Our own small server rather than prometheus-cpp's civetweb Exposer:
// civetweb starts its threads with a compiled-in 100 KB stack, and glibc
// refuses such a thread (EINVAL, before any clone) in any process whose
// static TLS is larger: a LibTorch process carries about 115 KB of it
// (OpenBLAS 61 KB, glog 30 KB), so the Exposer could never start in a
// worker. This thread gets the default stack.
class MetricsEndpoint {
 public:
  // INVALID_ARGUMENT for a malformed address, UNAVAILABLE if it cannot be
  // bound (in use, no permission, unknown host).
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& listen);
  // Stops serving and closes the port; a scrape in progress is cut short.
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // The endpoint keeps a weak reference: the caller keeps `collectable`
  // alive for as long as it should be scraped. Thread-safe.
  void Register(const std::weak_ptr<prometheus::Collectable>& collectable);
  // The bound TCP port.
  int port() const { return port_; }

 private:
  MetricsEndpoint(int listen_fd, int wake_read, int wake_write, int port);
  void Serve();
  void Answer(int fd);
  std::string Exposition();

  const int listen_fd_;
  const int wake_read_;  // a byte here (or EOF) stops Serve()
  const int wake_write_;
  const int port_;
  std::mutex mu_;
  std::vector<std::weak_ptr<prometheus::Collectable>> collectables_;
  std::thread thread_;
};

// Operations named in lethe_database_errors_total{operation}. Callers pass
// constants (e.g. "queue_stats", "ping", "claim_task"); never a value that
// grows without bound.
class DatabaseMetrics {
 public:
  // Registers (or joins, if already registered) the family in `registry`,
  // which must outlive this object.
  explicit DatabaseMetrics(prometheus::Registry& registry);
  // Thread-safe.
  void RecordError(std::string_view operation);

 private:
  prometheus::Family<prometheus::Counter>& errors_;
};

// The server's group commit of SubmitErasure (storage/erasure_store.h):
// how many submissions each batch wrote and how long its statement and
// commit took. Batches near 1 under load mean the writer keeps up without
// grouping; batches at --intake-max-batch mean it is the bottleneck.
class IntakeMetrics {
 public:
  // Registers the families in `registry`, which must outlive this object.
  explicit IntakeMetrics(prometheus::Registry& registry);
  // Thread-safe.
  void RecordBatch(size_t submissions, double seconds);

 private:
  prometheus::Histogram& batch_size_;
  prometheus::Histogram& batch_seconds_;
};

}  // namespace lethe::observability

#endif  // LETHE_OBSERVABILITY_METRICS_H_

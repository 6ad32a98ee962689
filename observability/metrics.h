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
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include "absl/status/statusor.h"

namespace lethe::observability {

// Serves GET /metrics over plain HTTP on `listen` (host:port; port 0 picks
// a free one) with the samples of every registered collectable.
class MetricsEndpoint {
 public:
  // INVALID_ARGUMENT for a malformed address, UNAVAILABLE if it cannot be
  // bound (in use, no permission).
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& listen);

  // The endpoint keeps a weak reference: the caller keeps `collectable`
  // alive for as long as it should be scraped.
  void Register(const std::weak_ptr<prometheus::Collectable>& collectable);
  // The bound TCP port.
  int port() const { return port_; }

 private:
  MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer, int port)
      : exposer_(std::move(exposer)), port_(port) {}

  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
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

}  // namespace lethe::observability

#endif  // LETHE_OBSERVABILITY_METRICS_H_

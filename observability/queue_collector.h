// QueueCollector: the state of the erasure queue, read from storage when
// Prometheus scrapes. Every server replica reads the same tables, so every
// replica reports the same, correct numbers (aggregate them with max, not
// sum). One query per scrape, its result cached briefly so that several
// Prometheus servers scraping at once cost one query.
//
//   lethe_erasure_requests{state}                    requests per state
//   lethe_erasure_tasks{state}                       tasks per state
//   lethe_erasure_tasks_oldest_queued_age_seconds    oldest QUEUED task
//   lethe_erasure_requests_oldest_open_age_seconds   oldest QUEUED/RUNNING
//   lethe_erasure_task_retries                       sum of (attempts - 1)
//   lethe_database_up                                1 if the query worked
//
// States are the schema's, lower-case; every known state is reported, with
// 0 when no row has it. Ages are 0 when nothing waits. While PostgreSQL is
// unreachable only lethe_database_up (0) is reported, and each failed query
// counts in lethe_database_errors_total{operation="queue_stats"}.
#ifndef LETHE_OBSERVABILITY_QUEUE_COLLECTOR_H_
#define LETHE_OBSERVABILITY_QUEUE_COLLECTOR_H_

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "absl/status/statusor.h"
#include "observability/metrics.h"
#include "storage/backend.h"

namespace lethe::observability {

using storage::QueueStats;

class QueueCollector final : public prometheus::Collectable {
 public:
  // `backend` and `errors` must outlive the collector; the figures come
  // from Backend::ReadQueueStats (PostgreSQL's reads on a connection of
  // their own, so a scrape never waits behind request handlers).
  QueueCollector(storage::Backend* backend, DatabaseMetrics* errors,
                 std::chrono::milliseconds cache_ttl = std::chrono::seconds(2));

  // Thread-safe; concurrent scrapes share one query.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  storage::Backend* const backend_;
  DatabaseMetrics* const errors_;
  const std::chrono::milliseconds cache_ttl_;
  mutable std::mutex mu_;
  // guarded by mu_: the last result (nullopt: the query failed) and when.
  mutable std::optional<QueueStats> cached_;
  mutable std::chrono::steady_clock::time_point cached_at_;
  mutable bool has_cache_ = false;
};

}  // namespace lethe::observability

#endif  // LETHE_OBSERVABILITY_QUEUE_COLLECTOR_H_

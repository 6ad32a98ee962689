// QueueCollector: the state of the erasure queue, read from PostgreSQL when
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
#include "storage/database.h"

namespace lethe::observability {

struct QueueStats {
  std::map<std::string, double> requests;  // lower-case state -> rows
  std::map<std::string, double> tasks;     // lower-case state -> rows
  double oldest_queued_task_age_seconds = 0;
  double oldest_open_request_age_seconds = 0;
  double task_retries = 0;
  double log_entries = 0;       // certificate transparency log tree size
  double checkpoint_entries = 0;  // tree size of the newest signed checkpoint
};

// The one query. Errors as storage::Database::Transact.
absl::StatusOr<QueueStats> ReadQueueStats(storage::Database& db);

class QueueCollector final : public prometheus::Collectable {
 public:
  // `db` and `errors` must outlive the collector. Give it a Database of its
  // own (pool of 1, short acquire timeout) so that a scrape never waits
  // behind request handlers for a connection.
  QueueCollector(storage::Database* db, DatabaseMetrics* errors,
                 std::chrono::milliseconds cache_ttl = std::chrono::seconds(2));

  // Thread-safe; concurrent scrapes share one query.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  storage::Database* const db_;
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

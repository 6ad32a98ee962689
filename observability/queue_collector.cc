#include "observability/queue_collector.h"

#include <pqxx/result>

#include <prometheus/metric_type.h>

namespace lethe::observability {
namespace {

constexpr const char* kRequestStates[] = {
    "queued", "running", "completed", "nothing_to_erase", "failed",
    "cancelled"};
constexpr const char* kTaskStates[] = {"queued", "leased", "done", "dead",
                                       "cancelled"};

// Scans erasure_requests and erasure_tasks once each for the counts (index-
// only on the state indexes where PostgreSQL can), plus two min()s, the
// log head's one row and a max() on the checkpoints' primary key.
constexpr const char* kQuery = R"sql(
SELECT 'request', lower(state), count(*)::float8
  FROM erasure_requests GROUP BY state
UNION ALL
SELECT 'task', lower(state), count(*)::float8
  FROM erasure_tasks GROUP BY state
UNION ALL
SELECT 'oldest_queued_task', '',
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
  FROM erasure_tasks WHERE state = 'QUEUED'
UNION ALL
SELECT 'oldest_open_request', '',
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
  FROM erasure_requests WHERE state IN ('QUEUED', 'RUNNING')
UNION ALL
SELECT 'retries', '', coalesce(sum(greatest(attempts - 1, 0)), 0)::float8
  FROM erasure_tasks
UNION ALL
SELECT 'log_entries', '', size::float8 FROM certificate_log_head
UNION ALL
SELECT 'checkpoint_entries', '', coalesce(max(tree_size), 0)::float8
  FROM certificate_checkpoints
)sql";

prometheus::MetricFamily Gauge(std::string name, std::string help) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = prometheus::MetricType::Gauge;
  return f;
}

void AddSample(prometheus::MetricFamily* f, double value,
               std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f->metric.push_back(std::move(m));
}

prometheus::MetricFamily PerState(std::string name, std::string help,
                                  std::map<std::string, double> counts,
                                  const auto& known_states) {
  for (const char* s : known_states) counts.try_emplace(s, 0.0);
  auto f = Gauge(std::move(name), std::move(help));
  for (const auto& [state, n] : counts) AddSample(&f, n, {{"state", state}});
  return f;
}

}  // namespace

absl::StatusOr<QueueStats> ReadQueueStats(storage::Database& db) {
  return db.TransactValue<QueueStats>(
      [](storage::Txn& txn) -> absl::StatusOr<QueueStats> {
        // A scrape must not hang on a lock or a slow plan.
        txn.exec("SET LOCAL statement_timeout = '5s'");
        const pqxx::result rows = txn.exec(kQuery);
        QueueStats s;
        for (const auto& row : rows) {
          const std::string kind = row[0].as<std::string>();
          const double value = row[2].as<double>();
          if (kind == "request") {
            s.requests[row[1].as<std::string>()] = value;
          } else if (kind == "task") {
            s.tasks[row[1].as<std::string>()] = value;
          } else if (kind == "oldest_queued_task") {
            s.oldest_queued_task_age_seconds = value;
          } else if (kind == "oldest_open_request") {
            s.oldest_open_request_age_seconds = value;
          } else if (kind == "retries") {
            s.task_retries = value;
          } else if (kind == "log_entries") {
            s.log_entries = value;
          } else if (kind == "checkpoint_entries") {
            s.checkpoint_entries = value;
          }
        }
        return s;
      });
}

QueueCollector::QueueCollector(storage::Database* db, DatabaseMetrics* errors,
                               std::chrono::milliseconds cache_ttl)
    : db_(db), errors_(errors), cache_ttl_(cache_ttl) {}

std::vector<prometheus::MetricFamily> QueueCollector::Collect() const {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (!has_cache_ || now - cached_at_ >= cache_ttl_) {
    auto stats = ReadQueueStats(*db_);
    if (stats.ok()) {
      cached_ = std::move(*stats);
    } else {
      cached_.reset();
      errors_->RecordError("queue_stats");
    }
    cached_at_ = now;
    has_cache_ = true;
  }

  std::vector<prometheus::MetricFamily> out;
  auto up = Gauge("lethe_database_up",
                  "1 if the last queue query reached PostgreSQL, else 0");
  AddSample(&up, cached_ ? 1 : 0);
  out.push_back(std::move(up));
  if (!cached_) return out;
  const QueueStats& s = *cached_;
  out.push_back(PerState("lethe_erasure_requests",
                         "Erasure requests per state (all replicas; "
                         "aggregate with max)",
                         s.requests, kRequestStates));
  out.push_back(PerState("lethe_erasure_tasks",
                         "Erasure tasks (one per request and model) per state",
                         s.tasks, kTaskStates));
  auto queued = Gauge("lethe_erasure_tasks_oldest_queued_age_seconds",
                      "Age of the oldest QUEUED task; 0 if none");
  AddSample(&queued, s.oldest_queued_task_age_seconds);
  out.push_back(std::move(queued));
  auto open = Gauge("lethe_erasure_requests_oldest_open_age_seconds",
                    "Age of the oldest QUEUED or RUNNING request; 0 if none");
  AddSample(&open, s.oldest_open_request_age_seconds);
  out.push_back(std::move(open));
  auto retries = Gauge("lethe_erasure_task_retries",
                       "Task attempts beyond the first, summed over all tasks");
  AddSample(&retries, s.task_retries);
  out.push_back(std::move(retries));
  auto log = Gauge("lethe_certificate_log_entries",
                   "Entries in the certificate transparency log (its tree "
                   "size)");
  AddSample(&log, s.log_entries);
  out.push_back(std::move(log));
  auto checkpoint = Gauge("lethe_certificate_log_checkpoint_entries",
                          "Tree size of the newest signed checkpoint of the "
                          "certificate log");
  AddSample(&checkpoint, s.checkpoint_entries);
  out.push_back(std::move(checkpoint));
  return out;
}

}  // namespace lethe::observability

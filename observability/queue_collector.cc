#include "observability/queue_collector.h"

#include <prometheus/metric_type.h>

namespace lethe::observability {
namespace {

constexpr const char* kRequestStates[] = {"queued",    "running",
                                          "completed", "nothing_to_erase",
                                          "failed",    "cancelled"};
constexpr const char* kTaskStates[] = {"queued", "leased", "done", "dead",
                                       "cancelled"};

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

QueueCollector::QueueCollector(storage::Backend* backend,
                               DatabaseMetrics* errors,
                               std::chrono::milliseconds cache_ttl)
    : backend_(backend), errors_(errors), cache_ttl_(cache_ttl) {}

std::vector<prometheus::MetricFamily> QueueCollector::Collect() const {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (!has_cache_ || now - cached_at_ >= cache_ttl_) {
    auto stats = backend_->ReadQueueStats();
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

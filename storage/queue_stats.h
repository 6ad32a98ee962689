// QueueStats: the state of the erasure queue and the certificate log, as
// the operators' gauges show it (observability/queue_collector.h).
#ifndef LETHE_STORAGE_QUEUE_STATS_H_
#define LETHE_STORAGE_QUEUE_STATS_H_

#include <map>
#include <string>

namespace lethe::storage {

struct QueueStats {
  std::map<std::string, double> requests;  // lower-case state -> rows
  std::map<std::string, double> tasks;     // lower-case state -> rows
  double oldest_queued_task_age_seconds = 0;
  double oldest_open_request_age_seconds = 0;
  double task_retries = 0;
  double log_entries = 0;         // certificate transparency log tree size
  double checkpoint_entries = 0;  // tree size of the newest signed checkpoint
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_QUEUE_STATS_H_

// Executor: a fixed pool of threads for the blocking work of handlers
// (database calls), so that gRPC's callback threads never block.
// Submit is thread-safe; the destructor runs every queued task, then joins.
//
// New calls enter through TrySubmit, which refuses once `max_queued` tasks
// wait (the server answers RESOURCE_EXHAUSTED: a burst cannot queue
// without bound, issue 17, item 4); Submit always queues, for the work of
// calls already admitted (a stream's polls, its clean-up), which must run.
#ifndef LETHE_SERVER_EXECUTOR_H_
#define LETHE_SERVER_EXECUTOR_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"

namespace lethe::server {

class Executor {
 public:
  // `max_queued` <= 0: TrySubmit never refuses.
  explicit Executor(int threads, int max_queued = 0);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Submit(std::function<void()> task);
  // False, dropping `task` unrun, when max_queued tasks wait already.
  [[nodiscard]] bool TrySubmit(std::function<void()> task);

 private:
  void Loop();

  base::Mutex mu_;
  base::CondVar cv_;  // queue_ gained a task, or stopping_
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  const size_t max_queued_;  // 0: unbounded
  std::vector<std::thread> threads_;
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_EXECUTOR_H_

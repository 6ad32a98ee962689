// Executor: a fixed pool of threads for the blocking work of handlers
// (database calls), so that gRPC's callback threads never block.
// Submit is thread-safe; the destructor runs every queued task, then joins.
#ifndef LETHE_SERVER_EXECUTOR_H_
#define LETHE_SERVER_EXECUTOR_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lethe::server {

class Executor {
 public:
  explicit Executor(int threads);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Submit(std::function<void()> task);

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_EXECUTOR_H_

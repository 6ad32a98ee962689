#include "server/executor.h"

namespace lethe::server {

Executor::Executor(int threads, int max_queued)
    : max_queued_(max_queued > 0 ? static_cast<size_t>(max_queued) : 0) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

Executor::~Executor() {
  {
    base::MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  for (auto& t : threads_) t.join();
}

void Executor::Submit(std::function<void()> task) {
  {
    base::MutexLock lock(&mu_);
    queue_.push_back(std::move(task));
  }
  cv_.Signal();
}

bool Executor::TrySubmit(std::function<void()> task) {
  {
    base::MutexLock lock(&mu_);
    if (max_queued_ > 0 && queue_.size() >= max_queued_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.Signal();
  return true;
}

void Executor::Loop() {
  for (;;) {
    std::function<void()> task;
    {
      base::MutexLock lock(&mu_);
      while (!stopping_ && queue_.empty()) cv_.Wait(&mu_);
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace lethe::server

#include "server/change_hub.h"

#include <algorithm>
#include <vector>

namespace lethe::server {

ChangeHub::ChangeHub(storage::Backend* backend,
                     std::chrono::milliseconds poll_interval)
    : backend_(backend), poll_(poll_interval), thread_([this] { Loop(); }) {}

ChangeHub::~ChangeHub() {
  stop_ = true;
  thread_.join();
}

uint64_t ChangeHub::Subscribe(const std::string& erasure_id,
                              std::function<void()> callback) {
  base::MutexLock lock(&mu_);
  const uint64_t token = next_token_++;
  subscribers_[token] = Subscriber{erasure_id, std::move(callback)};
  return token;
}

void ChangeHub::Unsubscribe(uint64_t token) {
  base::MutexLock lock(&mu_);
  subscribers_.erase(token);
}

void ChangeHub::Fire(const std::string* erasure_id) {
  base::MutexLock lock(&mu_);
  for (auto& [token, sub] : subscribers_) {
    if (erasure_id == nullptr || sub.erasure_id == *erasure_id) sub.callback();
  }
}

void ChangeHub::Loop() {
  // Short waits keep shutdown prompt.
  const auto wait = std::min(poll_, std::chrono::milliseconds(200));
  auto last_poll = std::chrono::steady_clock::now();
  while (!stop_) {
    auto listener = backend_->Listen({storage::kErasureChangedChannel});
    if (!listener.ok()) {
      Fire(nullptr);  // let watchers report UNAVAILABLE or recover
      std::this_thread::sleep_for(
          std::min(poll_, std::chrono::milliseconds(500)));
      continue;
    }
    while (!stop_) {
      auto ids = (*listener)->Wait(wait);
      if (!ids.ok()) break;  // subscription lost: listen again
      for (const auto& id : *ids) Fire(&id);
      if (std::chrono::steady_clock::now() - last_poll >= poll_) {
        last_poll = std::chrono::steady_clock::now();
        Fire(nullptr);
      }
    }
  }
}

}  // namespace lethe::server

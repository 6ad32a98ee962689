// ChangeHub: tells subscribers when an erasure request may have changed.
//
// One thread listens on the backend's erasure-changed channel (PostgreSQL:
// a trigger notifies it on every update of a request, whichever replica or
// worker made it) and calls the subscribers of that request.
// Every `poll_interval` it calls all subscribers anyway, and it reconnects
// after losing the database, so a missed notification costs at most one
// interval. Callbacks run on the hub thread under its lock: keep them
// short (hand work to an Executor) and never call back into the hub.
#ifndef LETHE_SERVER_CHANGE_HUB_H_
#define LETHE_SERVER_CHANGE_HUB_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "storage/backend.h"

namespace lethe::server {

class ChangeHub {
 public:
  ChangeHub(storage::Backend* backend, std::chrono::milliseconds poll_interval);
  ~ChangeHub();

  uint64_t Subscribe(const std::string& erasure_id,
                     std::function<void()> callback) ABSL_LOCKS_EXCLUDED(mu_);
  // After it returns, the callback is not running and will not run again.
  void Unsubscribe(uint64_t token) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Subscriber {
    std::string erasure_id;
    std::function<void()> callback;
  };
  void Loop();
  void Fire(const std::string* erasure_id)  // nullptr: everyone
      ABSL_LOCKS_EXCLUDED(mu_);

  storage::Backend* backend_;  // not owned
  const std::chrono::milliseconds poll_;
  std::atomic<bool> stop_{false};
  base::Mutex mu_;
  uint64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Subscriber> subscribers_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_CHANGE_HUB_H_

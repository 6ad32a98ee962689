#include "server/change_hub.h"

#include <pqxx/notification>
#include <pqxx/nontransaction>
#include <vector>

namespace lethe::server {
namespace {

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, std::vector<std::string>* ids)
      : pqxx::notification_receiver(conn, "lethe_erasure_changed"),
        ids_(ids) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override {
    ids_->push_back(payload);
  }

 private:
  std::vector<std::string>* ids_;
};

}  // namespace

ChangeHub::ChangeHub(storage::Database* db,
                     std::chrono::milliseconds poll_interval)
    : db_(db), poll_(poll_interval), thread_([this] { Loop(); }) {}

ChangeHub::~ChangeHub() {
  stop_ = true;
  thread_.join();
}

uint64_t ChangeHub::Subscribe(const std::string& erasure_id,
                              std::function<void()> callback) {
  std::lock_guard lock(mu_);
  const uint64_t token = next_token_++;
  subscribers_[token] = Subscriber{erasure_id, std::move(callback)};
  return token;
}

void ChangeHub::Unsubscribe(uint64_t token) {
  std::lock_guard lock(mu_);
  subscribers_.erase(token);
}

void ChangeHub::Fire(const std::string* erasure_id) {
  std::lock_guard lock(mu_);
  for (auto& [token, sub] : subscribers_) {
    if (erasure_id == nullptr || sub.erasure_id == *erasure_id) sub.callback();
  }
}

void ChangeHub::Loop() {
  const long poll_us = static_cast<long>(
      std::chrono::duration_cast<std::chrono::microseconds>(poll_).count());
  auto last_poll = std::chrono::steady_clock::now();
  while (!stop_) {
    auto conn = db_->OpenDedicated();
    if (!conn.ok()) {
      Fire(nullptr);  // let watchers report UNAVAILABLE or recover
      std::this_thread::sleep_for(std::min(poll_, std::chrono::milliseconds(500)));
      continue;
    }
    try {
      std::vector<std::string> ids;
      Receiver receiver(**conn, &ids);
      while (!stop_) {
        // Short waits keep shutdown prompt.
        (*conn)->await_notification(0, std::min(poll_us, 200000L));
        for (const auto& id : ids) Fire(&id);
        ids.clear();
        if (std::chrono::steady_clock::now() - last_poll >= poll_) {
          last_poll = std::chrono::steady_clock::now();
          Fire(nullptr);
        }
        if (!(*conn)->is_open()) break;
      }
    } catch (...) {
      // Connection lost: reconnect on the next turn.
    }
  }
}

}  // namespace lethe::server

#include "storage/memory/backend.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/ascii.h"
#include "storage/memory/core.h"
#include "storage/memory/work_queue.h"

namespace lethe::storage {
namespace memory {
namespace {

class MemoryListener final : public ChangeListener {
 public:
  MemoryListener(std::shared_ptr<ChangeHub> hub,
                 const std::vector<std::string>& channels)
      : hub_(std::move(hub)), inbox_(std::make_shared<ChangeHub::Inbox>()) {
    inbox_->channels.insert(channels.begin(), channels.end());
    hub_->Add(inbox_);
  }
  ~MemoryListener() override { hub_->Remove(inbox_.get()); }

  absl::StatusOr<std::vector<std::string>> Wait(
      std::chrono::milliseconds timeout) override {
    ChangeHub::Inbox& in = *inbox_;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    base::MutexLock lock(&in.mu);
    while (in.payloads.empty()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      in.changed.WaitFor(&in.mu, deadline - now);
    }
    std::vector<std::string> out;
    out.swap(in.payloads);
    return out;
  }

 private:
  std::shared_ptr<ChangeHub> hub_;
  std::shared_ptr<ChangeHub::Inbox> inbox_;
};

double AgeSeconds(std::optional<int64_t> oldest_us, int64_t now) {
  return oldest_us ? std::max(0.0, (now - *oldest_us) / 1e6) : 0;
}

QueueStats StatsOf(const State& s, int64_t now) {
  QueueStats q;
  std::optional<int64_t> oldest_task, oldest_request;
  for (const auto& [id, r] : s.requests) {
    ++q.requests[absl::AsciiStrToLower(r.row.state)];
    if (r.row.state == "QUEUED" || r.row.state == "RUNNING") {
      oldest_request =
          std::min(oldest_request.value_or(r.row.created_us), r.row.created_us);
    }
  }
  for (const auto& [id, t] : s.tasks) {
    ++q.tasks[absl::AsciiStrToLower(t.state)];
    q.task_retries += std::max(t.attempts - 1, 0);
    if (t.state == "QUEUED") {
      oldest_task = std::min(oldest_task.value_or(t.created_us), t.created_us);
    }
  }
  q.oldest_queued_task_age_seconds = AgeSeconds(oldest_task, now);
  q.oldest_open_request_age_seconds = AgeSeconds(oldest_request, now);
  q.log_entries = static_cast<double>(s.leaves.size());
  q.checkpoint_entries =
      s.checkpoints.empty() ? 0 : s.checkpoints.rbegin()->first;
  return q;
}

class MemoryBackend final : public Backend {
 public:
  explicit MemoryBackend(MemoryOptions options)
      : core_(std::move(options)),
        erasures_(NewErasureStore(&core_)),
        datasets_(NewDatasetStore(&core_)),
        models_(NewModelStore(&core_)),
        api_keys_(NewApiKeyStore(&core_)),
        certificates_(NewCertificateStore(&core_)) {}

  absl::Status Prepare(bool) override { return absl::OkStatus(); }
  absl::Status Ping() override { return absl::OkStatus(); }
  ErasureStore& erasures() override { return *erasures_; }
  DatasetStore& datasets() override { return *datasets_; }
  ModelStore& models() override { return *models_; }
  ApiKeyStore& api_keys() override { return *api_keys_; }
  CertificateStore& certificates() override { return *certificates_; }

  std::unique_ptr<WorkQueue> NewWorkQueue(
      const QueueOptions& options) override {
    return std::make_unique<MemoryWorkQueue>(&core_, options);
  }

  absl::StatusOr<std::unique_ptr<ChangeListener>> Listen(
      const std::vector<std::string>& channels) override {
    return std::unique_ptr<ChangeListener>(
        std::make_unique<MemoryListener>(core_.hub(), channels));
  }

  absl::StatusOr<QueueStats> ReadQueueStats() override {
    const int64_t now = core_.Now();
    return core_.Run([&](State& s) -> absl::StatusOr<QueueStats> {
      return StatsOf(s, now);
    });
  }

 private:
  Core core_;
  std::unique_ptr<ErasureStore> erasures_;
  std::unique_ptr<DatasetStore> datasets_;
  std::unique_ptr<ModelStore> models_;
  std::unique_ptr<ApiKeyStore> api_keys_;
  std::unique_ptr<CertificateStore> certificates_;
};

}  // namespace
}  // namespace memory

std::unique_ptr<Backend> NewMemoryBackend(MemoryOptions options) {
  return std::make_unique<memory::MemoryBackend>(std::move(options));
}

}  // namespace lethe::storage

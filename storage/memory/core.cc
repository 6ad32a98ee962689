#include "storage/memory/core.h"

#include <algorithm>
#include <chrono>

#include "storage/hash.h"

namespace lethe::storage::memory {
namespace {

int64_t SystemNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TaskRow TaskRowOf(const Task& t) {
  TaskRow row;
  row.model_id = t.model_id;
  row.state = t.state;
  row.attempts = t.attempts;
  row.last_error = t.last_error;
  row.result_version = t.result_version;
  row.updated_us = t.updated_us;
  return row;
}

}  // namespace

void ChangeHub::Add(const std::shared_ptr<Inbox>& inbox) {
  base::MutexLock lock(&mu_);
  inboxes_.push_back(inbox);
}

void ChangeHub::Remove(const Inbox* inbox) {
  base::MutexLock lock(&mu_);
  std::erase_if(inboxes_, [&](const std::weak_ptr<Inbox>& w) {
    auto p = w.lock();
    return p == nullptr || p.get() == inbox;
  });
}

void ChangeHub::Send(const std::vector<Notice>& notices) {
  base::MutexLock lock(&mu_);
  for (const auto& weak : inboxes_) {
    auto inbox = weak.lock();
    if (inbox == nullptr) continue;
    base::MutexLock inbox_lock(&inbox->mu);
    bool sent = false;
    for (const Notice& n : notices) {
      if (inbox->channels.count(n.channel)) {
        inbox->payloads.push_back(n.payload);
        sent = true;
      }
    }
    if (sent) inbox->changed.SignalAll();
  }
}

Core::Core(MemoryOptions options) : now_us_(std::move(options.now_us)) {
  if (!now_us_) now_us_ = SystemNowUs;
}

void Core::Finish(bool ok) {
  if (ok && !state_.pending.empty()) hub_->Send(state_.pending);
  state_.pending.clear();
}

std::string NewUuid() {
  std::string b = RandomBytes(16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  const std::string h = ToHex(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" +
         h.substr(16, 4) + "-" + h.substr(20);
}

bool IsTerminal(std::string_view state) {
  return state == "COMPLETED" || state == "NOTHING_TO_ERASE" ||
         state == "FAILED" || state == "CANCELLED";
}

ErasureRow RequestRow(const State& s, const Request& r) {
  ErasureRow row = r.row;
  row.tasks.clear();
  for (const auto& [id, t] : s.tasks) {
    if (t.erasure_id == r.row.id) row.tasks.push_back(TaskRowOf(t));
  }
  std::sort(row.tasks.begin(), row.tasks.end(),
            [](const TaskRow& a, const TaskRow& b) {
              return a.model_id < b.model_id;
            });
  return row;
}

void Touch(State& s, Request& r, int64_t now) {
  r.row.updated_us = now;
  s.pending.push_back({kErasureChangedChannel, r.row.id});
}

int64_t MaxVersion(const State& s, const std::string& model_id) {
  auto it = s.versions.upper_bound({model_id, INT64_MAX});
  if (it == s.versions.begin()) return 0;
  --it;
  return it->first.first == model_id ? it->first.second : 0;
}

absl::StatusOr<std::string> ReadCheckedArtifact(ByteStream* in,
                                                const std::string& sha256) {
  if (in == nullptr) return std::string();
  absl::StatusOr<std::string> bytes = ReadWholeStream(*in);
  if (!bytes.ok()) return bytes.status();
  if (Sha256(*bytes) != sha256) {
    return absl::InvalidArgumentError(
        "artifact bytes do not match their SHA-256 digest");
  }
  return bytes;
}

ModelRow ModelRowOf(const State& s, const Model& m) {
  ModelRow row = m.row;
  row.latest_version = MaxVersion(s, m.row.id);
  return row;
}

DatasetRow DatasetRowOf(const State& s, const DatasetRow& d) {
  DatasetRow row = d;
  row.train_records = row.test_records = 0;
  std::set<std::string> subjects;
  for (const auto& [id, r] : s.records) {
    if (r.dataset_id != d.id) continue;
    ++(r.row.test ? row.test_records : row.train_records);
    subjects.insert(r.row.subject_key);
  }
  row.subjects = static_cast<int64_t>(subjects.size());
  return row;
}

}  // namespace lethe::storage::memory

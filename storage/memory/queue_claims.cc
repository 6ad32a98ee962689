// Claims, leases, failures and reads of the in-memory WorkQueue
// (storage/postgres/work_queue.cc's ClaimBatch, Renew, Release, Fail,
// RescueExpired, Latest, ForEachTrainingRecord, Idle).
#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "storage/hash.h"
#include "storage/memory/work_queue.h"

namespace lethe::storage::memory {
namespace {

struct Candidate {
  const Model* model = nullptr;
  int batch_size = 0;
  int64_t oldest_us = 0;  // oldest QUEUED task
};

// Whether `m` has due work and no batch in flight, and its batch is full
// or its oldest task waited out the policy's batch window.
std::optional<Candidate> Ready(const State& s, const Model& m,
                               const QueueOptions& o, int64_t now) {
  const Policy policy = ParsePolicy(m.row.policy_json);
  if (m.row.state != "READY" || !DeviceAllows(policy, o.device_kind)) {
    return std::nullopt;
  }
  int64_t due = 0;
  std::optional<int64_t> oldest;
  for (const auto& [id, t] : s.tasks) {
    if (t.model_id != m.row.id) continue;
    if (t.state == "LEASED") return std::nullopt;
    if (t.state != "QUEUED") continue;
    if (t.not_before_us <= now) ++due;
    oldest = std::min(oldest.value_or(t.created_us), t.created_us);
  }
  const int batch = policy.batch_size > 0 ? policy.batch_size : o.default_batch;
  const int64_t window_us = int64_t{policy.batch_window_seconds} * 1000000;
  if (due == 0 || (due<batch&& * oldest> now - window_us)) {
    return std::nullopt;
  }
  return Candidate{&m, batch, *oldest};
}

std::optional<Candidate> PickModel(const State& s, const QueueOptions& o,
                                   int64_t now) {
  std::optional<Candidate> best;
  for (const auto& [id, m] : s.models) {
    auto c = Ready(s, m, o, now);
    if (c && (!best || std::tie(c->oldest_us, c->model->seq) <
                           std::tie(best->oldest_us, best->model->seq))) {
      best = c;
    }
  }
  return best;
}

// core::AssignSubject's shard: the first 8 bytes of SHA-256("lethe-sisa-v2:"
// + seed + ":" + subject key), big-endian, modulo the shard count.
uint64_t ShardOf(const std::string& seed, const std::string& subject_key,
                 int shards) {
  const std::string digest =
      Sha256(absl::StrCat("lethe-sisa-v2:", seed, ":", subject_key));
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(digest[i]);
  return v % static_cast<uint64_t>(shards);
}

// The oldest due tasks up to the batch size; for a SISA model, then the
// other due tasks in the shards those retrain, up to max_batch in all.
std::vector<Task*> PickTasks(State& s, const Candidate& c,
                             const QueueOptions& o, int64_t now) {
  std::vector<Task*> due;
  for (auto& [id, t] : s.tasks) {
    if (t.model_id == c.model->row.id && t.state == "QUEUED" &&
        t.not_before_us <= now) {
      due.push_back(&t);
    }
  }
  std::stable_sort(due.begin(), due.end(), [](const Task* a, const Task* b) {
    return a->created_us < b->created_us;
  });
  const size_t first = std::min(due.size(), static_cast<size_t>(c.batch_size));
  std::vector<Task*> picked(due.begin(), due.begin() + first);
  const int shards = ParsePolicy(c.model->row.policy_json).sisa_shards;
  if (shards <= 0) return picked;
  const std::string seed = RecipeSeed(c.model->row.recipe_json);
  auto subject = [&](const Task* t) -> const std::string& {
    return s.requests.at(t->erasure_id).subject_key;
  };
  std::set<uint64_t> retrained;
  for (const Task* t : picked) {
    if (!subject(t).empty())
      retrained.insert(ShardOf(seed, subject(t), shards));
  }
  const size_t extra =
      static_cast<size_t>(std::max(0, o.max_batch - c.batch_size));
  for (size_t i = first, added = 0; i < due.size() && added < extra; ++i) {
    if (!subject(due[i]).empty() &&
        retrained.count(ShardOf(seed, subject(due[i]), shards))) {
      picked.push_back(due[i]);
      ++added;
    }
  }
  return picked;
}

}  // namespace

int64_t MemoryWorkQueue::BackoffUs(int n) const {
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  const double seconds =
      std::min(options_.retry_max_seconds,
               options_.retry_base_seconds * jitter(rng) *
                   std::pow(2.0, std::min(std::max(n, 0), 10)));
  return static_cast<int64_t>(seconds * 1e6);
}

Task* MemoryWorkQueue::Held(State& s, const LeasedTask& lt,
                            const std::string& owner) {
  auto it = s.tasks.find(lt.task_id);
  if (it == s.tasks.end()) return nullptr;
  Task& t = it->second;
  const bool held =
      t.attempts == lt.token && t.state == "LEASED" && t.lease_owner == owner;
  return held ? &t : nullptr;
}

absl::Status MemoryWorkQueue::FillRows(const State& s,
                                       const std::string& model_id,
                                       ModelRow* model, DatasetRow* dataset) {
  auto m = s.models.find(model_id);
  if (m == s.models.end()) {
    return absl::NotFoundError(absl::StrCat("no model ", model_id));
  }
  auto d = s.datasets.find(m->second.row.dataset_id);
  if (d == s.datasets.end()) {
    return absl::NotFoundError(
        absl::StrCat("no dataset ", m->second.row.dataset_id));
  }
  *model = ModelRowOf(s, m->second);
  *dataset = DatasetRowOf(s, d->second);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<TaskBatch>> MemoryWorkQueue::ClaimBatch() {
  const int64_t now = core_->Now();
  return core_->Run([&](State& s) -> absl::StatusOr<std::optional<TaskBatch>> {
    auto candidate = PickModel(s, options_, now);
    if (!candidate) return std::optional<TaskBatch>();
    TaskBatch batch;
    if (auto st =
            FillRows(s, candidate->model->row.id, &batch.model, &batch.dataset);
        !st.ok()) {
      return st;
    }
    for (Task* t : PickTasks(s, *candidate, options_, now)) {
      t->state = "LEASED";
      ++t->attempts;
      t->lease_owner = options_.owner;
      t->lease_expires_us = now + LeaseUs();
      t->updated_us = now;
      Request& r = s.requests.at(t->erasure_id);
      if (r.row.state == "QUEUED") r.row.state = "RUNNING";
      Touch(s, r, now);
      batch.tasks.push_back(
          LeasedTask{t->id, t->attempts, t->erasure_id, r.subject_key});
    }
    return std::optional<TaskBatch>(std::move(batch));
  });
}

absl::Status MemoryWorkQueue::Renew(const TaskBatch& batch) {
  const int64_t now = core_->Now();
  return core_->Run([&](State& s) -> absl::Status {
    std::vector<Task*> held;
    for (const auto& lt : batch.tasks) {
      if (Task* t = Held(s, lt, options_.owner)) held.push_back(t);
    }
    if (held.size() != batch.tasks.size()) {
      return absl::FailedPreconditionError(
          "lease lost: another worker took over part of this batch");
    }
    for (Task* t : held) t->lease_expires_us = now + LeaseUs();
    return absl::OkStatus();
  });
}

absl::Status MemoryWorkQueue::Release(const TaskBatch& batch) {
  const int64_t now = core_->Now();
  return core_->Run([&](State& s) -> absl::Status {
    for (const auto& lt : batch.tasks) {
      Task* t = Held(s, lt, options_.owner);
      if (t == nullptr) continue;
      t->state = "QUEUED";
      t->lease_owner.clear();
      t->lease_expires_us.reset();
      t->not_before_us = t->updated_us = now;
    }
    s.pending.push_back({kTasksChannel, ""});
    return absl::OkStatus();
  });
}

absl::Status MemoryWorkQueue::Fail(const TaskBatch& batch,
                                   const std::string& error) {
  const int64_t now = core_->Now();
  return core_->Run([&](State& s) -> absl::Status {
    std::set<std::string> erasures;
    for (const auto& lt : batch.tasks) {
      Task* t = Held(s, lt, options_.owner);
      if (t == nullptr) continue;
      const Policy policy =
          ParsePolicy(s.models.at(t->model_id).row.policy_json);
      const int max_attempts = policy.max_attempts > 0
                                   ? policy.max_attempts
                                   : options_.default_max_attempts;
      t->not_before_us = now + BackoffUs(t->failures);
      ++t->failures;
      t->state = t->failures >= max_attempts ? "DEAD" : "QUEUED";
      t->lease_owner.clear();
      t->lease_expires_us.reset();
      t->last_error = error;
      t->updated_us = now;
      erasures.insert(t->erasure_id);
    }
    if (erasures.empty()) return absl::OkStatus();  // lease lost: not ours
    SettleFailedRequests(s, erasures, now);
    s.pending.push_back({kTasksChannel, ""});
    return absl::OkStatus();
  });
}

absl::StatusOr<int> MemoryWorkQueue::RescueExpired() {
  const int64_t now = core_->Now();
  const int max_lost = options_.max_lost_leases;
  return core_->Run([&](State& s) -> absl::StatusOr<int> {
    std::set<std::string> erasures;
    int rescued = 0;
    for (auto& [id, t] : s.tasks) {
      if (t.state != "LEASED" || !t.lease_expires_us ||
          *t.lease_expires_us >= now) {
        continue;
      }
      t.not_before_us = now + BackoffUs(t.lost_leases);
      ++t.lost_leases;
      const bool dead = t.lost_leases >= max_lost;
      t.state = dead ? "DEAD" : "QUEUED";
      t.last_error =
          dead ? absl::StrCat("lease lost ", t.lost_leases,
                              " times (the workers running it died or lost "
                              "the database); last: ",
                              t.lease_owner)
               : absl::StrCat("lease of ", t.lease_owner,
                              " expired (worker lost)");
      t.lease_owner.clear();
      t.lease_expires_us.reset();
      t.updated_us = now;
      erasures.insert(t.erasure_id);
      ++rescued;
    }
    if (!erasures.empty()) {
      SettleFailedRequests(s, erasures, now);
      s.pending.push_back({kTasksChannel, ""});
    }
    std::vector<std::string> invalid;
    for (auto& [id, m] : s.models) {
      if ((m.row.state != "PENDING_VALIDATION" && m.row.state != "TRAINING") ||
          !m.lease_expires_us || *m.lease_expires_us >= now) {
        continue;
      }
      ++m.job_lost_leases;
      const bool lost = m.job_lost_leases >= max_lost;
      if (lost) m.row.state = "INVALID";
      m.row.state_reason =
          lost ? absl::StrCat("job lease lost ", m.job_lost_leases,
                              " times (the workers running it died or lost "
                              "the database)")
               : absl::StrCat("lease of ", m.lease_owner,
                              " expired (worker lost)");
      m.lease_owner.clear();
      m.lease_expires_us.reset();
      m.row.updated_us = now;
      if (lost) invalid.push_back(id);
      ++rescued;
    }
    for (const auto& id : invalid) SkipTasksOfInvalidModels(s, id, now);
    return rescued;
  });
}

absl::StatusOr<int> MemoryWorkQueue::SkipInvalidModels() {
  const int64_t now = core_->Now();
  return core_->Run([&](State& s) -> absl::StatusOr<int> {
    return SkipTasksOfInvalidModels(s, "", now);
  });
}

absl::StatusOr<LatestVersion> MemoryWorkQueue::LatestIn(
    const State& s, const std::string& model_id) {
  const Version* newest = nullptr;
  for (auto it = s.versions.lower_bound({model_id, 0});
       it != s.versions.end() && it->first.first == model_id; ++it) {
    if (it->second.row.deleted_us == 0) newest = &it->second;
  }
  if (newest == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("model ", model_id, " has no live version"));
  }
  LatestVersion v;
  v.version = newest->row.version;
  v.artifact_sha256 = newest->row.artifact_sha256;
  auto first = s.versions.find({model_id, 1});
  v.trained_by_lethe =
      first != s.versions.end() && first->second.row.produced_by == "trained";
  if (!newest->state_sha256.empty()) {
    auto it = s.artifacts.find(newest->state_sha256);
    if (it == s.artifacts.end()) {
      return absl::NotFoundError(
          absl::StrCat("no artifact ", ToHex(newest->state_sha256)));
    }
    v.state = it->second;
  }
  return v;
}

absl::StatusOr<std::unique_ptr<ArtifactReader>> MemoryWorkQueue::OpenArtifact(
    const std::string& sha256) {
  return core_->Run(
      [&](State& s) -> absl::StatusOr<std::unique_ptr<ArtifactReader>> {
        auto it = s.artifacts.find(sha256);
        if (it == s.artifacts.end()) {
          return absl::NotFoundError(
              absl::StrCat("no artifact ", ToHex(sha256)));
        }
        return NewStringArtifactReader(it->second, sha256);
      });
}

absl::StatusOr<LatestVersion> MemoryWorkQueue::Latest(
    const std::string& model_id) {
  return core_->Run([&](State& s) { return LatestIn(s, model_id); });
}

absl::Status MemoryWorkQueue::ForEachTrainingRecord(
    const std::string& model_id,
    const std::function<absl::Status(RecordData&)>& fn) {
  // Pages, read under the mutex and handed to `fn` outside it.
  int64_t after = 0;
  for (;;) {
    std::vector<RecordData> page;
    (void)core_->Run([&](State& s) -> absl::Status {
      auto m = s.models.find(model_id);
      if (m == s.models.end()) return absl::OkStatus();
      for (auto it = s.records.upper_bound(after);
           it != s.records.end() && page.size() < 5000; ++it) {
        const Record& r = it->second;
        if (r.dataset_id != m->second.row.dataset_id ||
            s.exclusions.count({model_id, r.row.subject_key})) {
          continue;
        }
        page.push_back(RecordData{it->first, r.row.subject_key, r.row.label,
                                  r.row.test, r.row.features});
      }
      return absl::OkStatus();
    });
    if (page.empty()) return absl::OkStatus();
    after = page.back().id;
    for (auto& r : page) {
      if (auto st = fn(r); !st.ok()) return st;
    }
  }
}

absl::StatusOr<bool> MemoryWorkQueue::Idle() {
  return core_->Run([&](State& s) -> absl::StatusOr<bool> {
    auto mine = [&](const Model& m) {
      return DeviceAllows(ParsePolicy(m.row.policy_json), options_.device_kind);
    };
    auto pending_job = [](const Model& m) {
      return m.row.state == "PENDING_VALIDATION" || m.row.state == "TRAINING";
    };
    for (const auto& [id, t] : s.tasks) {
      const Model& m = s.models.at(t.model_id);
      const bool live =
          t.state == "LEASED" ||
          (t.state == "QUEUED" && (m.row.state == "READY" || pending_job(m)));
      if (live && mine(m)) return false;
    }
    for (const auto& [id, m] : s.models) {
      if (pending_job(m) && mine(m)) return false;
    }
    return true;
  });
}

absl::StatusOr<int> MemoryWorkQueue::DeleteDueVersions() {
  const int64_t now = core_->Now();
  return core_->Run([&](State& s) -> absl::StatusOr<int> {
    return DeleteVersionsDue(s, "", now);
  });
}

}  // namespace lethe::storage::memory

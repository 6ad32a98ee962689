// Model jobs of the in-memory WorkQueue: validating a registered artifact
// or training from the recipe, leased on the model row
// (storage/postgres/work_queue.cc's ClaimModelJob and what follows).
#include "absl/strings/str_cat.h"
#include "storage/hash.h"
#include "storage/memory/work_queue.h"

namespace lethe::storage::memory {
namespace {

bool PendingJob(const Model& m) {
  return m.row.state == "PENDING_VALIDATION" || m.row.state == "TRAINING";
}

// The oldest model with a job due that no live lease holds.
Model* DueJob(State& s, const std::string& device_kind, int64_t now) {
  Model* best = nullptr;
  for (auto& [id, m] : s.models) {
    if (!PendingJob(m) || m.job_not_before_us > now ||
        (m.lease_expires_us && *m.lease_expires_us >= now) ||
        !DeviceAllows(ParsePolicy(m.row.policy_json), device_kind)) {
      continue;
    }
    if (best == nullptr || std::tie(m.row.created_us, m.seq) <
                               std::tie(best->row.created_us, best->seq)) {
      best = &m;
    }
  }
  return best;
}

// The model of `job` if this owner still holds its lease, else nullptr.
Model* HeldJob(State& s, const ModelJob& job, const std::string& owner) {
  auto it = s.models.find(job.model.id);
  if (it == s.models.end() || it->second.job_attempts != job.token ||
      it->second.lease_owner != owner) {
    return nullptr;
  }
  return &it->second;
}

}  // namespace

absl::StatusOr<std::optional<ModelJob>> MemoryWorkQueue::ClaimModelJob() {
  const int64_t now = core_->Now();
  return core_->Run([&](State& s) -> absl::StatusOr<std::optional<ModelJob>> {
    Model* m = DueJob(s, options_.device_kind, now);
    if (m == nullptr) return std::optional<ModelJob>();
    ModelJob job;
    job.training = m->row.state == "TRAINING";
    if (!job.training) {
      auto latest = LatestIn(s, m->row.id);
      if (!latest.ok()) return latest.status();
      job.artifact_sha256 = std::move(latest->artifact_sha256);
    }
    ++m->job_attempts;
    m->lease_owner = options_.owner;
    m->lease_expires_us = now + LeaseUs();
    m->row.state_reason = absl::StrCat(
        job.training ? "training on " : "validating on ", options_.owner);
    m->row.updated_us = now;
    job.token = m->job_attempts;
    if (job.training) ExcludeSubjectsBeingErased(s, m->row.id);
    if (auto st = FillRows(s, m->row.id, &job.model, &job.dataset); !st.ok()) {
      return st;
    }
    return std::optional<ModelJob>(std::move(job));
  });
}

absl::Status MemoryWorkQueue::RenewModelJob(const ModelJob& job) {
  const int64_t now = core_->Now();
  return core_->Run([&](State& s) -> absl::Status {
    Model* m = HeldJob(s, job, options_.owner);
    if (m == nullptr)
      return absl::FailedPreconditionError("model job lease lost");
    m->lease_expires_us = now + LeaseUs();
    return absl::OkStatus();
  });
}

absl::Status MemoryWorkQueue::FinishModelJob(const ModelJob& job,
                                             ByteStream* artifact_stream,
                                             const std::string& artifact_sha256,
                                             const std::string& state,
                                             const std::string& produced_by,
                                             const std::string& report_json) {
  absl::StatusOr<std::string> read =
      ReadCheckedArtifact(artifact_stream, artifact_sha256);
  if (!read.ok()) return read.status();
  const std::string artifact = std::move(*read);
  const int64_t now = core_->Now();
  return core_->Run([&](State& s) -> absl::Status {
    Model* m = HeldJob(s, job, options_.owner);
    if (m == nullptr || !PendingJob(*m)) {
      return absl::FailedPreconditionError("model job lease lost");
    }
    if (artifact_stream != nullptr) {
      Version v;
      v.row.model_id = m->row.id;
      v.row.version = MaxVersion(s, m->row.id) + 1;
      v.row.artifact_sha256 = Sha256(artifact);
      v.row.size_bytes = static_cast<int64_t>(artifact.size());
      v.row.produced_by = produced_by;
      v.row.report_json = report_json;
      v.row.created_us = now;
      s.artifacts[v.row.artifact_sha256] = artifact;
      if (!state.empty()) {
        v.state_sha256 = Sha256(state);
        s.artifacts[v.state_sha256] = state;
      }
      s.versions[{m->row.id, v.row.version}] = std::move(v);
    }
    m->row.state = "READY";
    m->row.state_reason.clear();
    m->lease_owner.clear();
    m->lease_expires_us.reset();
    m->row.updated_us = now;
    s.pending.push_back({kTasksChannel, ""});
    return absl::OkStatus();
  });
}

absl::Status MemoryWorkQueue::FailModelJob(const ModelJob& job,
                                           const std::string& reason,
                                           bool permanent) {
  const int64_t now = core_->Now();
  return core_->Run([&](State& s) -> absl::Status {
    Model* m = HeldJob(s, job, options_.owner);
    if (m == nullptr) return absl::OkStatus();  // lease lost: not ours
    const Policy policy = ParsePolicy(m->row.policy_json);
    const int max_attempts = policy.max_attempts > 0
                                 ? policy.max_attempts
                                 : options_.default_max_attempts;
    m->job_not_before_us = now + BackoffUs(m->job_failures);
    ++m->job_failures;
    const bool invalid = permanent || m->job_failures >= max_attempts;
    if (invalid) m->row.state = "INVALID";
    m->row.state_reason = reason;
    m->lease_owner.clear();
    m->lease_expires_us.reset();
    m->row.updated_us = now;
    if (invalid) SkipTasksOfInvalidModels(s, m->row.id, now);
    return absl::OkStatus();
  });
}

}  // namespace lethe::storage::memory

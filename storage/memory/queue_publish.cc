// Publication of a batch's result, all or nothing (storage/postgres/
// work_queue.cc's Publish): the state is copied first and put back if any
// step, the completion hook included, fails.
#include "absl/strings/str_cat.h"
#include "storage/hash.h"
#include "storage/memory/work_queue.h"

namespace lethe::storage::memory {
namespace {

// `artifact`: the bytes req.artifact held, read before the lock was taken.
void StoreVersion(State& s, const TaskBatch& batch, const PublishRequest& req,
                  const std::string& artifact, int64_t version, int64_t now) {
  Version v;
  v.row.model_id = batch.model.id;
  v.row.version = version;
  v.row.artifact_sha256 = req.artifact_sha256;
  v.row.size_bytes = static_cast<int64_t>(artifact.size());
  v.row.parent_version = req.parent_version;
  v.row.produced_by = req.produced_by;
  v.row.report_json = req.report_json;
  v.row.created_us = now;
  s.artifacts[v.row.artifact_sha256] = artifact;
  if (!req.state.empty()) {
    v.state_sha256 = Sha256(req.state);
    s.artifacts[v.state_sha256] = req.state;
  }
  s.versions[{batch.model.id, version}] = std::move(v);
}

// The batch's tasks DONE at `version`, their subjects on the model's
// exclusion list, and the requests settled.
Settled MarkDone(State& s, const std::vector<Task*>& held,
                 const TaskBatch& batch, int64_t version,
                 const std::string& produced_by, int64_t now) {
  std::set<std::string> erasures;
  for (Task* t : held) {
    t->state = "DONE";
    t->result_version = version;
    t->method = produced_by;
    t->lease_owner.clear();
    t->lease_expires_us.reset();
    t->updated_us = now;
    erasures.insert(t->erasure_id);
  }
  for (const std::string& id : erasures) {
    const Request& r = s.requests.at(id);
    if (r.subject_key.empty()) continue;
    s.exclusions.try_emplace({batch.model.id, r.subject_key},
                             Exclusion{id, version});
  }
  return SettleRequests(s, erasures, batch.model.id, batch.model.dataset_id,
                        now);
}

// The new version's removal count; every older live version is deleted
// once the grace period ends.
void RetireOlderVersions(State& s, const TaskBatch& batch,
                         const PublishResult& out, int64_t grace_seconds,
                         int64_t now) {
  s.versions.at({batch.model.id, out.version}).row.records_removed =
      out.records_removed;
  for (auto& [key, v] : s.versions) {
    if (key.first == batch.model.id && key.second < out.version &&
        v.row.deleted_us == 0 && !v.delete_after_us) {
      v.delete_after_us = now + grace_seconds * 1000000;
    }
  }
}

}  // namespace

absl::StatusOr<PublishResult> MemoryWorkQueue::PublishIn(
    State& s, const TaskBatch& batch, const PublishRequest& req,
    const std::string& artifact, const CompletionHook& hook, int64_t now) {
  std::vector<Task*> held;
  for (const auto& lt : batch.tasks) {
    if (Task* t = Held(s, lt, options_.owner)) held.push_back(t);
  }
  if (held.size() != batch.tasks.size()) {
    return absl::FailedPreconditionError(
        "lease lost before publishing; the next attempt will redo it");
  }
  const int64_t latest = MaxVersion(s, batch.model.id);
  if (latest != req.parent_version) {
    return absl::AbortedError(
        absl::StrCat("model ", batch.model.id, " moved from version ",
                     req.parent_version, " to ", latest, " during the run"));
  }
  PublishResult out;
  out.version = latest;
  const bool new_version = req.artifact != nullptr;
  if (new_version) {
    out.version = latest + 1;
    StoreVersion(s, batch, req, artifact, out.version, now);
  }
  Settled settled = MarkDone(s, held, batch, out.version, req.produced_by, now);
  out.records_removed = settled.removed_in_dataset;
  out.completed_erasures = std::move(settled.completed);
  if (new_version) RetireOlderVersions(s, batch, out, req.grace_seconds, now);
  if (hook) {
    auto scope = NewScope(s, now);
    if (auto st = hook(*scope, out.completed_erasures); !st.ok()) return st;
  }
  s.models.at(batch.model.id).row.updated_us = now;
  // Deleted in the same step: no moment where both exist.
  if (req.grace_seconds == 0) DeleteVersionsDue(s, batch.model.id, now);
  s.pending.push_back({kTasksChannel, ""});
  return out;
}

absl::StatusOr<PublishResult> MemoryWorkQueue::Publish(
    const TaskBatch& batch, const PublishRequest& req,
    const CompletionHook& hook) {
  absl::StatusOr<std::string> read =
      ReadCheckedArtifact(req.artifact, req.artifact_sha256);
  if (!read.ok()) return read.status();
  const std::string artifact = std::move(*read);
  const int64_t now = core_->Now();
  return core_->RunAtomic(
      [&](State& s) { return PublishIn(s, batch, req, artifact, hook, now); });
}

}  // namespace lethe::storage::memory

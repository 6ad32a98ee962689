// ErasureStore in memory: storage/postgres/erasure_store.cc's intake
// statement (InsertRoundSql), one request at a time.
#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/memory/core.h"

namespace lethe::storage::memory {
namespace {

bool InKeyDatasets(const SubmitParams& p, const std::string& dataset_id) {
  return p.scope_dataset_ids.empty() ||
         std::binary_search(p.scope_dataset_ids.begin(),
                            p.scope_dataset_ids.end(), dataset_id);
}

absl::Status ScopeStatus(const State& s, const SubmitParams& p) {
  std::vector<std::string> missing;
  for (const auto& id : p.scope_model_ids) {
    std::string lower = absl::AsciiStrToLower(id);
    auto it = s.models.find(lower);
    if (it == s.models.end() || !InKeyDatasets(p, it->second.row.dataset_id)) {
      missing.push_back(std::move(lower));
    }
  }
  if (missing.empty()) return absl::OkStatus();
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  return absl::NotFoundError(absl::StrCat(
      "model_ids: no such model",
      p.scope_dataset_ids.empty() ? "" : " in the datasets of this API key",
      ": ", absl::StrJoin(missing, ", ")));
}

absl::StatusOr<SubmitResult> Replay(const State& s, const SubmitParams& p,
                                    const std::string& id) {
  const Request& prior = s.requests.at(id);
  if (prior.body_sha256 != p.body_sha256 &&
      (p.legacy_body_sha256.empty() ||
       prior.body_sha256 != p.legacy_body_sha256)) {
    return absl::AlreadyExistsError(
        absl::StrCat("idempotency_key '", p.idempotency_key,
                     "' was already used for a different request (", id,
                     "); use a new key for a new request"));
  }
  return SubmitResult{RequestRow(s, prior), true};
}

bool HasSubject(const State& s, const std::string& dataset_id,
                const std::string& subject_key) {
  for (const auto& [id, r] : s.records) {
    if (r.dataset_id == dataset_id && r.row.subject_key == subject_key) {
      return true;
    }
  }
  return false;
}

// Models in scope (all, when unscoped) whose dataset holds the subject.
std::vector<std::string> Matches(const State& s, const SubmitParams& p) {
  std::set<std::string> scope;
  for (const auto& id : p.scope_model_ids) {
    scope.insert(absl::AsciiStrToLower(id));
  }
  std::vector<std::string> out;
  for (const auto& [id, m] : s.models) {
    if (!scope.empty() && !scope.count(id)) continue;
    if (!InKeyDatasets(p, m.row.dataset_id)) continue;
    if (HasSubject(s, m.row.dataset_id, p.subject_key)) out.push_back(id);
  }
  return out;
}

// Deletes the subject's records in datasets that no model uses (of the
// key's datasets).
int64_t PurgeOrphans(State& s, const SubmitParams& p) {
  std::set<std::string> used;
  for (const auto& [id, m] : s.models) used.insert(m.row.dataset_id);
  return static_cast<int64_t>(std::erase_if(s.records, [&](const auto& kv) {
    return kv.second.row.subject_key == p.subject_key &&
           !used.count(kv.second.dataset_id) &&
           InKeyDatasets(p, kv.second.dataset_id);
  }));
}

std::string NothingReason(int64_t orphaned) {
  if (orphaned == 0) {
    return "no model in scope was trained on records of this subject";
  }
  return absl::StrCat(
      "no model in scope was trained on records of this subject; its ",
      orphaned, " records in datasets with no model were deleted");
}

Request NewRequest(const SubmitParams& p, int64_t now) {
  Request r;
  r.row.id = NewUuid();
  r.row.subject_commitment = p.subject_commitment;
  r.row.legal_ground = p.legal_ground;
  r.row.legal_reference = p.legal_reference;
  for (const auto& id : p.scope_model_ids) {
    r.row.scope_model_ids.push_back(absl::AsciiStrToLower(id));
  }
  r.row.idempotency_key = p.idempotency_key;
  r.row.client_key_id = p.client_key_id;
  r.row.created_us = r.row.updated_us = now;
  r.body_sha256 = p.body_sha256;
  return r;
}

absl::StatusOr<SubmitResult> SubmitIn(State& s, const SubmitParams& p,
                                      int64_t now) {
  if (auto st = ScopeStatus(s, p); !st.ok()) return st;
  auto prior = s.by_idempotency.find({p.client_key_id, p.idempotency_key});
  if (prior != s.by_idempotency.end()) return Replay(s, p, prior->second);
  const std::vector<std::string> models = Matches(s, p);
  const int64_t orphaned = p.scope_model_ids.empty() ? PurgeOrphans(s, p) : 0;
  Request r = NewRequest(p, now);
  if (models.empty()) {
    r.row.state = "NOTHING_TO_ERASE";
    r.row.state_reason = NothingReason(orphaned);
    r.row.completed_us = now;
  } else {
    r.row.state = "QUEUED";
    r.subject_key = p.subject_key;
    for (const auto& model_id : models) {
      Task t;
      t.id = s.next_task_id++;
      t.erasure_id = r.row.id;
      t.model_id = model_id;
      t.not_before_us = t.created_us = t.updated_us = now;
      s.tasks.emplace(t.id, std::move(t));
    }
    s.pending.push_back({kTasksChannel, ""});
  }
  const std::string id = r.row.id;
  s.by_idempotency[{p.client_key_id, p.idempotency_key}] = id;
  auto& stored = s.requests.emplace(id, std::move(r)).first->second;
  return SubmitResult{RequestRow(s, stored), false};
}

bool Matches(const ErasureRow& row, const State& s, const ErasureFilter& f,
             const Page& page) {
  if (!f.state.empty() && row.state != f.state) return false;
  if (f.created_after_us != 0 && row.created_us < f.created_after_us) {
    return false;
  }
  if (f.created_before_us != 0 && row.created_us >= f.created_before_us) {
    return false;
  }
  if (page.after &&
      std::make_pair(row.created_us, row.id) >=
          std::make_pair(page.after->created_us, page.after->id)) {
    return false;
  }
  if (f.model_id.empty()) return true;
  for (const auto& [id, t] : s.tasks) {
    if (t.erasure_id == row.id && t.model_id == f.model_id) return true;
  }
  return false;
}

absl::StatusOr<ErasureRow> CancelIn(State& s, const std::string& id,
                                    const std::string& only_key, int64_t now) {
  auto it = s.requests.find(id);
  if (it == s.requests.end()) {
    return absl::NotFoundError(absl::StrCat("no erasure request ", id));
  }
  Request& r = it->second;
  if (!only_key.empty() && only_key != r.row.client_key_id) {
    return absl::PermissionDeniedError(absl::StrCat(
        "erasure request ", id, " was submitted with another API key"));
  }
  if (r.row.state == "CANCELLED") return RequestRow(s, r);
  if (IsTerminal(r.row.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("erasure request ", id, " is already ", r.row.state,
                     "; only a QUEUED request can be cancelled"));
  }
  for (const auto& [task_id, t] : s.tasks) {
    if (t.erasure_id == id && (t.state != "QUEUED" || t.attempts > 0)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "erasure request ", id,
          " can no longer be cancelled: a worker has started on it"));
    }
  }
  for (auto& [task_id, t] : s.tasks) {
    if (t.erasure_id != id) continue;
    t.state = "CANCELLED";
    t.updated_us = now;
  }
  r.row.state = "CANCELLED";
  r.row.state_reason = "cancelled by client";
  r.subject_key.clear();
  r.row.completed_us = now;
  Touch(s, r, now);
  return RequestRow(s, r);
}

class MemoryErasureStore final : public ErasureStore {
 public:
  explicit MemoryErasureStore(Core* core) : core_(core) {}

  absl::StatusOr<SubmitResult> Submit(const SubmitParams& p) override {
    const int64_t now = core_->Now();
    return core_->Run([&](State& s) { return SubmitIn(s, p, now); });
  }

  // Synchronous: `done` runs on the calling thread, outside the mutex.
  void SubmitAsync(SubmitParams params, SubmitCallback done) override {
    done(Submit(params));
  }

  absl::StatusOr<ErasureRow> Get(const std::string& id) override {
    return core_->Run([&](State& s) -> absl::StatusOr<ErasureRow> {
      auto it = s.requests.find(id);
      if (it == s.requests.end()) {
        return absl::NotFoundError(absl::StrCat("no erasure request ", id));
      }
      return RequestRow(s, it->second);
    });
  }

  absl::StatusOr<ErasurePage> List(const ErasureFilter& f,
                                   const Page& page) override {
    return core_->Run([&](State& s) -> absl::StatusOr<ErasurePage> {
      std::vector<const Request*> hits;
      for (const auto& [id, r] : s.requests) {
        if (Matches(r.row, s, f, page)) hits.push_back(&r);
      }
      std::sort(hits.begin(), hits.end(),
                [](const Request* a, const Request* b) {
                  return std::tie(a->row.created_us, a->row.id) >
                         std::tie(b->row.created_us, b->row.id);
                });
      ErasurePage out;
      for (const Request* r : hits) {
        if (static_cast<int>(out.rows.size()) == page.size) {
          out.next = PageCursor{out.rows.back().created_us, out.rows.back().id};
          break;
        }
        out.rows.push_back(RequestRow(s, *r));
      }
      return out;
    });
  }

  absl::StatusOr<ErasureRow> Cancel(const std::string& id,
                                    const std::string& /*actor*/,
                                    const std::string& only_key) override {
    const int64_t now = core_->Now();
    return core_->Run([&](State& s) { return CancelIn(s, id, only_key, now); });
  }

 private:
  Core* core_;
};

}  // namespace

std::unique_ptr<ErasureStore> NewErasureStore(Core* core) {
  return std::make_unique<MemoryErasureStore>(core);
}

}  // namespace lethe::storage::memory

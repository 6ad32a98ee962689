// What happens to requests, records and versions after tasks change:
// storage/postgres/work_queue.cc's SettleRequests, SettleFailedRequests,
// SkipTasksOfInvalidModels, ExcludeSubjectsBeingErased and
// DeleteVersionsDue, over the in-memory rows.
#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/memory/core.h"

namespace lethe::storage::memory {
namespace {

bool Open(const Request& r) {
  return r.row.state == "QUEUED" || r.row.state == "RUNNING";
}

bool IsSettled(const Task& t) {
  return t.state == "DONE" || t.state == "SKIPPED";
}

const std::string& DatasetOf(const State& s, const Task& t) {
  return s.models.at(t.model_id).row.dataset_id;
}

// Deletes the subject's records in `dataset_id` and its exclusions on that
// dataset's models; credits the count to one of the request's tasks on the
// dataset (that of `model_id` first, then a DONE one, then the oldest).
int64_t RemoveSubject(State& s, const Request& r, const std::string& dataset_id,
                      const std::string& model_id) {
  const int64_t n =
      static_cast<int64_t>(std::erase_if(s.records, [&](const auto& kv) {
        return kv.second.dataset_id == dataset_id &&
               kv.second.row.subject_key == r.subject_key;
      }));
  std::erase_if(s.exclusions, [&](const auto& kv) {
    return kv.first.second == r.subject_key &&
           s.models.at(kv.first.first).row.dataset_id == dataset_id;
  });
  if (n == 0) return 0;
  Task* credited = nullptr;
  auto rank = [&](const Task& t) {
    return std::make_tuple(t.model_id != model_id, t.state != "DONE", t.id);
  };
  for (auto& [id, t] : s.tasks) {
    if (t.erasure_id != r.row.id || DatasetOf(s, t) != dataset_id) continue;
    if (credited == nullptr || rank(t) < rank(*credited)) credited = &t;
  }
  if (credited != nullptr) credited->records_removed += n;
  return n;
}

// Removes the subject of `r` from every dataset on which each of its tasks
// is DONE or SKIPPED; returns the count removed from `dataset_id`.
int64_t RemoveSettledSubject(State& s, const Request& r,
                             const std::string& model_id,
                             const std::string& dataset_id) {
  std::map<std::string, bool> settled_on;  // dataset -> all tasks settled
  for (const auto& [id, t] : s.tasks) {
    if (t.erasure_id != r.row.id) continue;
    auto [it, fresh] = settled_on.emplace(DatasetOf(s, t), true);
    it->second = it->second && IsSettled(t);
  }
  int64_t removed_here = 0;
  for (const auto& [dataset, settled] : settled_on) {
    if (!settled) continue;
    const int64_t n = RemoveSubject(s, r, dataset, model_id);
    if (dataset == dataset_id) removed_here += n;
  }
  return removed_here;
}

bool AllSettled(const State& s, const std::string& erasure_id) {
  for (const auto& [id, t] : s.tasks) {
    if (t.erasure_id == erasure_id && !IsSettled(t)) return false;
  }
  return true;
}

std::string SkippedReasons(const State& s, const std::string& erasure_id) {
  std::vector<const Task*> skipped;
  for (const auto& [id, t] : s.tasks) {
    if (t.erasure_id == erasure_id && t.state == "SKIPPED")
      skipped.push_back(&t);
  }
  std::sort(skipped.begin(), skipped.end(), [](const Task* a, const Task* b) {
    return a->model_id < b->model_id;
  });
  std::vector<std::string> reasons;
  reasons.reserve(skipped.size());
  for (const Task* t : skipped) reasons.push_back(t->last_error);
  return absl::StrJoin(reasons, "; ");
}

}  // namespace

Settled SettleRequests(State& s, const std::set<std::string>& erasure_ids,
                       const std::string& model_id,
                       const std::string& dataset_id, int64_t now) {
  Settled out;
  for (const std::string& id : erasure_ids) {
    auto it = s.requests.find(id);
    if (it == s.requests.end() || !Open(it->second) ||
        it->second.subject_key.empty()) {
      continue;
    }
    out.removed_in_dataset +=
        RemoveSettledSubject(s, it->second, model_id, dataset_id);
  }
  for (const std::string& id : erasure_ids) {
    auto it = s.requests.find(id);
    if (it == s.requests.end() || !Open(it->second) || !AllSettled(s, id)) {
      continue;
    }
    Request& r = it->second;
    r.row.state = "COMPLETED";
    r.row.completed_us = now;
    r.subject_key.clear();
    r.row.state_reason = SkippedReasons(s, id);
    Touch(s, r, now);
    out.completed.push_back(id);
  }
  SettleFailedRequests(s, erasure_ids, now);
  return out;
}

void SettleFailedRequests(State& s, const std::set<std::string>& erasure_ids,
                          int64_t now) {
  for (const std::string& id : erasure_ids) {
    auto it = s.requests.find(id);
    if (it == s.requests.end()) continue;
    Request& r = it->second;
    const Task* dead = nullptr;
    bool running = false;
    for (const auto& [task_id, t] : s.tasks) {
      if (t.erasure_id != id) continue;
      if (t.state == "DEAD" && dead == nullptr) dead = &t;
      running |= t.state == "QUEUED" || t.state == "LEASED";
    }
    if (Open(r) && dead != nullptr) {
      r.row.state = "FAILED";
      r.row.completed_us = now;
      r.row.state_reason = absl::StrCat("task on model ", dead->model_id,
                                        " failed: ", dead->last_error);
      Touch(s, r, now);
    }
    if (r.row.state == "FAILED" && !running) r.subject_key.clear();
  }
}

int SkipTasksOfInvalidModels(State& s, const std::string& model_id,
                             int64_t now) {
  std::set<std::string> erasures, models;
  int skipped = 0;
  for (auto& [id, t] : s.tasks) {
    const Model& m = s.models.at(t.model_id);
    if (m.row.state != "INVALID" || t.state != "QUEUED" ||
        (!model_id.empty() && m.row.id != model_id)) {
      continue;
    }
    t.state = "SKIPPED";
    t.lease_owner.clear();
    t.lease_expires_us.reset();
    t.updated_us = now;
    t.last_error =
        absl::StrCat("model ", m.row.name, " is INVALID (", m.row.state_reason,
                     "): its versions were deleted instead of "
                     "unlearned");
    erasures.insert(t.erasure_id);
    models.insert(t.model_id);
    ++skipped;
  }
  if (skipped == 0) return 0;
  for (auto& [key, v] : s.versions) {
    if (!models.count(key.first) || v.row.deleted_us != 0) continue;
    if (!v.delete_after_us || *v.delete_after_us > now) v.delete_after_us = now;
  }
  SettleRequests(s, erasures, "", "", now);
  s.pending.push_back({kTasksChannel, ""});
  return skipped;
}

void ExcludeSubjectsBeingErased(State& s, const std::string& model_id) {
  const std::string& dataset = s.models.at(model_id).row.dataset_id;
  std::vector<std::pair<std::string, std::string>> found;  // subject, erasure
  for (const auto& [key, x] : s.exclusions) {
    if (key.first != model_id &&
        s.models.at(key.first).row.dataset_id == dataset) {
      found.emplace_back(key.second, x.erasure_id);
    }
  }
  for (const auto& [id, t] : s.tasks) {
    const Request& r = s.requests.at(t.erasure_id);
    if (!r.subject_key.empty() && Open(r) &&
        s.models.at(t.model_id).row.dataset_id == dataset) {
      found.emplace_back(r.subject_key, r.row.id);
    }
  }
  for (const auto& [subject, erasure] : found) {
    s.exclusions.try_emplace({model_id, subject}, Exclusion{erasure, 0});
  }
}

int DeleteVersionsDue(State& s, const std::string& model_id, int64_t now) {
  std::vector<Version*> due;
  for (auto& [key, v] : s.versions) {
    if ((model_id.empty() || key.first == model_id) && v.delete_after_us &&
        *v.delete_after_us <= now && v.row.deleted_us == 0) {
      v.row.deleted_us = now;
      due.push_back(&v);
    }
  }
  auto referenced = [&](const std::string& digest) {
    for (const auto& [key, v] : s.versions) {
      if (v.row.deleted_us == 0 &&
          (v.row.artifact_sha256 == digest || v.state_sha256 == digest)) {
        return true;
      }
    }
    return false;
  };
  for (const Version* v : due) {
    for (const std::string* digest :
         {&v->row.artifact_sha256, &v->state_sha256}) {
      if (!digest->empty() && !referenced(*digest)) s.artifacts.erase(*digest);
    }
  }
  return static_cast<int>(due.size());
}

}  // namespace lethe::storage::memory

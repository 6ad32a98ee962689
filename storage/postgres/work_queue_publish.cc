// PgWorkQueue: what a run reads (the newest version, the training records)
// and what it writes (publication), plus deletion of superseded versions.
#include <pqxx/result>

#include "absl/strings/str_cat.h"
#include "storage/hash.h"
#include "storage/postgres/sql_util.h"
#include "storage/postgres/stores.h"
#include "storage/postgres/work_queue.h"
#include "storage/postgres/work_queue_internal.h"
#include "storage/queries_sql.h"

namespace lethe::storage {

using internal::Bytea;
using internal::ErasureIds;
using internal::ReadBytea;
using internal::TaskIds;
using internal::Tokens;

absl::StatusOr<LatestVersion> PgWorkQueue::Latest(const std::string& model_id) {
  return db_->TransactValue<LatestVersion>(
      [&](Txn& txn) -> absl::StatusOr<LatestVersion> {
        auto res = txn.exec_params(sql::kLatestVersion, model_id);
        if (res.empty()) {
          return absl::FailedPreconditionError(
              absl::StrCat("model ", model_id, " has no live version"));
        }
        LatestVersion v;
        v.version = res[0][0].as<int64_t>();
        v.artifact_sha256 = ReadBytea(res[0][1]);
        v.trained_by_lethe = res[0][3].as<bool>();
        if (!res[0][2].is_null()) {
          auto state = artifacts_->Get(txn, ReadBytea(res[0][2]));
          if (!state.ok()) return state.status();
          v.state = std::move(*state);
        }
        return v;
      });
}

absl::StatusOr<std::unique_ptr<ArtifactReader>> PgWorkQueue::OpenArtifact(
    const std::string& sha256) {
  return artifacts_->Open(*db_, sha256);
}

absl::Status PgWorkQueue::ForEachTrainingRecord(
    const std::string& model_id,
    const std::function<absl::Status(RecordData&)>& fn) {
  // The model's dataset first: the pages' plan needs it as a value. A
  // model that is gone has no records to train on (as in memory).
  std::string dataset_id;
  auto found = db_->Transact([&](Txn& txn) -> absl::Status {
    auto res = txn.exec_params(sql::kModelDataset, model_id);
    if (!res.empty()) dataset_id = res[0][0].as<std::string>();
    return absl::OkStatus();
  });
  if (!found.ok()) return found;
  if (dataset_id.empty()) return absl::OkStatus();
  // Pages of 5,000 keep memory flat on large datasets.
  int64_t after = 0;
  for (;;) {
    std::vector<RecordData> page;
    auto st = db_->Transact([&](Txn& txn) -> absl::Status {
      auto res =
          txn.exec_params(sql::kTrainingRecords, dataset_id, model_id, after);
      for (const auto& r : res) {
        page.push_back(RecordData{r[0].as<int64_t>(), ReadBytea(r[1]),
                                  r[2].as<int32_t>(), r[3].as<bool>(),
                                  ReadBytea(r[4])});
      }
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    if (page.empty()) return absl::OkStatus();
    after = page.back().id;
    for (auto& r : page) {
      if (auto s = fn(r); !s.ok()) return s;
    }
  }
}

absl::StatusOr<int64_t> PgWorkQueue::LockForPublish(Txn& txn,
                                                    const TaskBatch& batch,
                                                    int64_t parent_version) {
  auto held = txn.exec_params(sql::kHeldTasks, TaskIds(batch), Tokens(batch),
                              options_.owner);
  if (held.size() != batch.tasks.size()) {
    return absl::FailedPreconditionError(
        "lease lost before publishing; the next attempt will redo it");
  }
  txn.exec_params(sql::kLockModel, batch.model.id);
  const int64_t latest =
      txn.exec_params1(sql::kNewestVersion, batch.model.id)[0].as<int64_t>();
  if (latest != parent_version) {
    return absl::AbortedError(
        absl::StrCat("model ", batch.model.id, " moved from version ",
                     parent_version, " to ", latest, " during the run"));
  }
  return latest;
}

absl::Status PgWorkQueue::StoreVersion(Txn& txn, const TaskBatch& batch,
                                       const PublishRequest& req,
                                       int64_t version) {
  const std::string& sha = req.artifact_sha256;
  if (auto st = artifacts_->Put(txn, sha, *req.artifact); !st.ok()) return st;
  std::string state_sha;
  if (!req.state.empty()) {
    state_sha = Sha256(req.state);
    if (auto st = artifacts_->PutBytes(txn, state_sha, req.state); !st.ok()) {
      return st;
    }
  }
  txn.exec_params(sql::kInsertVersion, batch.model.id, version, Bytea(sha),
                  req.artifact->size(), req.parent_version, req.produced_by,
                  req.report_json, Bytea(state_sha));
  return absl::OkStatus();
}

namespace {

// The batch's tasks DONE at `version`, their subjects on the model's
// exclusion list, and the requests settled.
internal::Settled MarkDone(pqxx::transaction_base& txn, const TaskBatch& batch,
                           const std::string& actor, int64_t version,
                           const std::string& produced_by) {
  txn.exec_params(sql::kMarkTasksDone, TaskIds(batch), Tokens(batch), version,
                  produced_by);
  // From this commit on, no run of this model reads these subjects (before
  // the settling below, which drops the exclusions of subjects whose
  // records it deletes).
  const std::string erasures = ErasureIds(batch);
  txn.exec_params(sql::kExcludeAbsorbedSubjects, batch.model.id, erasures,
                  version);
  return internal::SettleRequests(txn, erasures, actor, batch.model.id,
                                  batch.model.dataset_id);
}

// A new version supersedes every older one (each trained with the erased
// subjects): they are deleted after the grace period.
void RetireOlderVersions(pqxx::transaction_base& txn, const TaskBatch& batch,
                         const PublishResult& out, int64_t grace_seconds) {
  txn.exec_params(sql::kSetRecordsRemoved, batch.model.id, out.version,
                  out.records_removed);
  txn.exec_params(sql::kRetireOlderVersions, batch.model.id, out.version,
                  static_cast<double>(grace_seconds));
}

void AuditPublication(pqxx::transaction_base& txn, const TaskBatch& batch,
                      const std::string& actor, const PublishResult& out,
                      bool new_version, const std::string& produced_by) {
  for (const auto& t : batch.tasks) {
    internal::AppendAudit(txn, actor, "task.done", t.erasure_id, batch.model.id,
                          absl::StrCat("{\"version\":", out.version, "}"));
  }
  if (!new_version) return;
  internal::AppendAudit(
      txn, actor, "model.version_published", "", batch.model.id,
      absl::StrCat("{\"version\":", out.version, R"(,"produced_by":")",
                   produced_by, R"(","records_removed":)", out.records_removed,
                   "}"));
}

}  // namespace

absl::StatusOr<PublishResult> PgWorkQueue::Publish(const TaskBatch& batch,
                                                   const PublishRequest& req,
                                                   const CompletionHook& hook) {
  return db_->TransactValue<PublishResult>(
      [&](Txn& txn) -> absl::StatusOr<PublishResult> {
        auto latest = LockForPublish(txn, batch, req.parent_version);
        if (!latest.ok()) return latest.status();
        PublishResult out;
        out.version = *latest;
        const bool new_version = req.artifact != nullptr;
        if (new_version) {
          out.version = *latest + 1;
          if (auto st = StoreVersion(txn, batch, req, out.version); !st.ok()) {
            return st;
          }
        }
        internal::Settled settled =
            MarkDone(txn, batch, options_.owner, out.version, req.produced_by);
        out.records_removed = settled.removed_in_dataset;
        out.completed_erasures = std::move(settled.completed);
        if (new_version)
          RetireOlderVersions(txn, batch, out, req.grace_seconds);
        if (hook) {
          PgCertificateScope scope(txn);
          if (auto st = hook(scope, out.completed_erasures); !st.ok())
            return st;
        }
        AuditPublication(txn, batch, options_.owner, out, new_version,
                         req.produced_by);
        txn.exec_params(sql::kTouchModel, batch.model.id);
        if (req.grace_seconds == 0) {
          // Deleted in the same commit: no moment where both exist.
          auto n = internal::DeleteVersionsDue(txn, artifacts_, options_.owner,
                                               batch.model.id);
          if (!n.ok()) return n.status();
        }
        txn.exec("NOTIFY lethe_tasks");
        return out;
      });
}

absl::StatusOr<int> PgWorkQueue::DeleteDueVersions() {
  return db_->TransactValue<int>([&](Txn& txn) {
    return internal::DeleteVersionsDue(txn, artifacts_, options_.owner, "");
  });
}

}  // namespace lethe::storage

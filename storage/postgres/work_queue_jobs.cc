// PgWorkQueue: model jobs (validating a registered artifact, training a
// built-in architecture), leased on the model row.
#include <pqxx/result>

#include "absl/strings/str_cat.h"
#include "storage/hash.h"
#include "storage/postgres/sql_util.h"
#include "storage/postgres/work_queue.h"
#include "storage/postgres/work_queue_internal.h"
#include "storage/queries_sql.h"

namespace lethe::storage {

using internal::Bytea;

absl::StatusOr<std::optional<ModelJob>> PgWorkQueue::ClaimModelJob() {
  auto claimed = db_->TransactValue<std::optional<ModelJob>>(
      [&](Txn& txn) -> absl::StatusOr<std::optional<ModelJob>> {
        auto res = txn.exec_params(sql::kClaimModelJob, options_.owner,
                                   static_cast<double>(options_.lease.count()),
                                   options_.device_kind);
        if (res.empty()) return std::optional<ModelJob>();
        ModelJob job;
        job.model.id = res[0][0].c_str();
        job.token = res[0][1].as<int32_t>();
        job.training = res[0][2].as<bool>();
        if (job.training)
          internal::ExcludeSubjectsBeingErased(txn, job.model.id);
        return std::optional<ModelJob>(std::move(job));
      });
  if (!claimed.ok() || !claimed->has_value()) return claimed;
  ModelJob& job = **claimed;
  const std::string model_id = job.model.id;
  if (auto st = FillRows(model_id, &job.model, &job.dataset); !st.ok()) {
    return st;
  }
  if (!job.training) {
    auto latest = Latest(job.model.id);
    if (!latest.ok()) return latest.status();
    job.artifact_sha256 = std::move(latest->artifact_sha256);
  }
  return claimed;
}

absl::Status PgWorkQueue::RenewModelJob(const ModelJob& job) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    auto res = txn.exec_params(sql::kRenewModelJob, job.model.id, job.token,
                               static_cast<double>(options_.lease.count()),
                               options_.owner);
    if (res.empty()) {
      return absl::FailedPreconditionError("model job lease lost");
    }
    return absl::OkStatus();
  });
}

absl::Status PgWorkQueue::FinishModelJob(const ModelJob& job,
                                         ByteStream* artifact,
                                         const std::string& artifact_sha256,
                                         const std::string& state,
                                         const std::string& produced_by,
                                         const std::string& report_json) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    auto held = txn.exec_params(sql::kHeldModelJob, job.model.id, job.token,
                                options_.owner);
    if (held.empty()) {
      return absl::FailedPreconditionError("model job lease lost");
    }
    if (artifact != nullptr) {
      const std::string& sha = artifact_sha256;
      if (auto st = artifacts_->Put(txn, sha, *artifact); !st.ok()) return st;
      std::string state_sha;
      if (!state.empty()) {
        state_sha = Sha256(state);
        if (auto st = artifacts_->PutBytes(txn, state_sha, state); !st.ok()) {
          return st;
        }
      }
      txn.exec_params(sql::kInsertTrainedVersion, job.model.id, Bytea(sha),
                      artifact->size(), produced_by, report_json,
                      Bytea(state_sha));
    }
    txn.exec_params(sql::kModelReady, job.model.id);
    internal::AppendAudit(txn, options_.owner,
                          job.training ? "model.trained" : "model.validated",
                          "", job.model.id, report_json);
    txn.exec("NOTIFY lethe_tasks");
    return absl::OkStatus();
  });
}

absl::Status PgWorkQueue::FailModelJob(const ModelJob& job,
                                       const std::string& reason,
                                       bool permanent) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    auto res = txn.exec_params(sql::kFailModelJob, job.model.id, job.token,
                               options_.owner, permanent, reason,
                               BackoffSeconds(1), options_.default_max_attempts,
                               options_.retry_max_seconds);
    if (res.empty()) return absl::OkStatus();  // lease lost: not ours
    const bool invalid = res[0][0].as<bool>();
    if (invalid) {
      internal::SkipTasksOfInvalidModels(txn, job.model.id, options_.owner);
    }
    internal::AppendAudit(txn, options_.owner,
                          invalid ? "model.invalid" : "model.job_retry", "",
                          job.model.id, "");
    return absl::OkStatus();
  });
}

}  // namespace lethe::storage

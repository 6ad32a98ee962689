// PgWorkQueue: claims, leases, failures and rescue of erasure tasks.
#include <cmath>
#include <random>

#include <pqxx/result>

#include "absl/strings/str_cat.h"
#include "storage/postgres/sql_util.h"
#include "storage/postgres/stores.h"
#include "storage/postgres/work_queue.h"
#include "storage/postgres/work_queue_internal.h"
#include "storage/queries_sql.h"

namespace lethe::storage {

using internal::ErasureIds;
using internal::ReadBytea;
using internal::TaskIds;
using internal::Tokens;

double PgWorkQueue::BackoffSeconds(int attempts) const {
  thread_local std::mt19937_64 rng(std::random_device{}());
  const double base =
      options_.retry_base_seconds * std::pow(2.0, std::max(0, attempts - 1));
  const double capped = std::min(base, options_.retry_max_seconds);
  // "Equal jitter": half fixed, half random, so retries of a burst spread.
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return capped * jitter(rng);
}

absl::StatusOr<int> PgWorkQueue::RescueExpired() {
  return db_->TransactValue<int>([&](Txn& txn) -> absl::StatusOr<int> {
    // A lost lease is not a failure of the work (the worker was killed or
    // cut off from the database): it counts against max_lost_leases only.
    auto res = txn.exec_params(
        sql::kRescueExpiredTasks, options_.max_lost_leases,
        options_.retry_base_seconds, options_.retry_max_seconds);
    std::vector<std::string> ids;
    for (const auto& r : res) ids.emplace_back(r[0].c_str());
    if (!ids.empty()) {
      internal::SettleFailedRequests(txn, internal::UuidArray(ids));
      txn.exec("NOTIFY lethe_tasks");
    }
    // Model jobs likewise; a model whose jobs keep losing their workers
    // becomes INVALID (and its queued tasks SKIPPED) after the bound.
    auto jobs =
        txn.exec_params(sql::kRescueExpiredModelJobs, options_.max_lost_leases);
    for (const auto& r : jobs) {
      if (r[1].as<bool>()) {
        internal::SkipTasksOfInvalidModels(txn, r[0].c_str(), options_.owner);
      }
    }
    return static_cast<int>(ids.size() + jobs.size());
  });
}

absl::StatusOr<int> PgWorkQueue::SkipInvalidModels() {
  return db_->TransactValue<int>([&](Txn& txn) -> absl::StatusOr<int> {
    return internal::SkipTasksOfInvalidModels(txn, "", options_.owner);
  });
}

namespace {

// Leases the tasks of the locked model `model_id` (queries/lease_tasks.sql)
// and marks their requests RUNNING. nullopt when none was due after all.
std::optional<TaskBatch> LeaseTasks(Txn& txn, const QueueOptions& o,
                                    const std::string& model_id, int batch_size,
                                    int sisa_shards,
                                    const std::string& recipe_seed) {
  // A fresh snapshot, taken with the model locked, sees any batch another
  // worker committed meanwhile.
  auto tasks =
      txn.exec_params(sql::kLeaseTasks, model_id, batch_size, o.owner,
                      static_cast<double>(o.lease.count()), sisa_shards,
                      std::max(0, o.max_batch - batch_size), recipe_seed);
  if (tasks.empty()) return std::nullopt;
  TaskBatch batch;
  std::vector<std::string> erasures;
  for (const auto& r : tasks) {
    batch.tasks.push_back(
        LeasedTask{r[0].as<int64_t>(), r[1].as<int32_t>(), r[2].c_str(), ""});
    erasures.emplace_back(r[2].c_str());
  }
  auto keys =
      txn.exec_params(sql::kMarkRequestsRunning, internal::UuidArray(erasures));
  for (const auto& r : keys) {
    for (auto& t : batch.tasks) {
      if (t.erasure_id == r[0].c_str()) t.subject_key = ReadBytea(r[1]);
    }
  }
  internal::AppendAudit(txn, o.owner, "tasks.claimed", "", model_id,
                        absl::StrCat("{\"tasks\":", batch.tasks.size(), "}"));
  return batch;
}

}  // namespace

absl::StatusOr<std::optional<TaskBatch>> PgWorkQueue::ClaimBatch() {
  std::string model_id;
  auto claimed = db_->TransactValue<std::optional<TaskBatch>>(
      [&](Txn& txn) -> absl::StatusOr<std::optional<TaskBatch>> {
        // One READY model with due work and no batch in flight, locked.
        auto model = txn.exec_params(
            sql::kLockReadyModel, options_.default_batch, options_.device_kind);
        if (model.empty()) return std::optional<TaskBatch>();
        model_id = model[0][0].c_str();
        return LeaseTasks(txn, options_, model_id, model[0][1].as<int>(),
                          model[0][2].as<int>(), model[0][3].c_str());
      });
  if (!claimed.ok() || !claimed->has_value()) return claimed;
  if (auto st = FillRows(model_id, &(*claimed)->model, &(*claimed)->dataset);
      !st.ok()) {
    return st;
  }
  return claimed;
}

absl::Status PgWorkQueue::FillRows(const std::string& model_id, ModelRow* model,
                                   DatasetRow* dataset) {
  PgModelStore models(db_, artifacts_);
  auto m = models.Get(model_id);
  if (!m.ok()) return m.status();
  PgDatasetStore datasets(db_);
  auto d = datasets.Get(m->dataset_id);
  if (!d.ok()) return d.status();
  *model = std::move(*m);
  *dataset = std::move(*d);
  return absl::OkStatus();
}

absl::Status PgWorkQueue::Renew(const TaskBatch& batch) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    auto res = txn.exec_params(sql::kRenewTasks, TaskIds(batch), Tokens(batch),
                               options_.owner,
                               static_cast<double>(options_.lease.count()));
    if (res.size() != batch.tasks.size()) {
      return absl::FailedPreconditionError(
          "lease lost: another worker took over part of this batch");
    }
    return absl::OkStatus();
  });
}

absl::Status PgWorkQueue::Release(const TaskBatch& batch) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    txn.exec_params(sql::kReleaseTasks, TaskIds(batch), Tokens(batch),
                    options_.owner);
    internal::AppendAudit(txn, options_.owner, "tasks.released", "",
                          batch.model.id, "");
    txn.exec("NOTIFY lethe_tasks");
    return absl::OkStatus();
  });
}

absl::Status PgWorkQueue::Fail(const TaskBatch& batch,
                               const std::string& error) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    auto failed = txn.exec_params(
        sql::kFailTasks, TaskIds(batch), Tokens(batch), options_.owner,
        options_.default_max_attempts, error, options_.retry_base_seconds,
        options_.retry_max_seconds);
    if (failed.empty()) return absl::OkStatus();  // lease lost: not ours
    for (const auto& r : failed) {
      internal::AppendAudit(
          txn, options_.owner, r[1].as<bool>() ? "task.dead" : "task.retry",
          r[0].c_str(), batch.model.id,
          absl::StrCat("{\"failures\":", r[2].as<int>(), "}"));
    }
    internal::SettleFailedRequests(txn, ErasureIds(batch));
    txn.exec("NOTIFY lethe_tasks");
    return absl::OkStatus();
  });
}

absl::StatusOr<bool> PgWorkQueue::Idle() {
  return db_->TransactValue<bool>([&](Txn& txn) -> absl::StatusOr<bool> {
    return txn.exec_params1(sql::kIdle, options_.device_kind)[0].as<bool>();
  });
}

}  // namespace lethe::storage

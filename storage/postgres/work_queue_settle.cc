#include <pqxx/result>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/postgres/sql_util.h"
#include "storage/postgres/work_queue_internal.h"
#include "storage/queries_sql.h"

namespace lethe::storage::internal {

std::string TaskIds(const TaskBatch& b) {
  std::vector<std::string> v;
  for (const auto& t : b.tasks) v.push_back(absl::StrCat(t.task_id));
  return absl::StrCat("{", absl::StrJoin(v, ","), "}");
}

std::string Tokens(const TaskBatch& b) {
  std::vector<std::string> v;
  for (const auto& t : b.tasks) v.push_back(absl::StrCat(t.token));
  return absl::StrCat("{", absl::StrJoin(v, ","), "}");
}

std::string ErasureIds(const TaskBatch& b) {
  std::vector<std::string> v;
  for (const auto& t : b.tasks) v.push_back(t.erasure_id);
  return UuidArray(v);
}

void SettleFailedRequests(pqxx::transaction_base& txn,
                          const std::string& erasure_ids) {
  txn.exec_params(sql::kFailRequestsWithDeadTasks, erasure_ids);
  txn.exec_params(sql::kClearFailedSubjectKeys, erasure_ids);
}

Settled SettleRequests(pqxx::transaction_base& txn,
                       const std::string& erasure_ids, const std::string& actor,
                       const std::string& model_id,
                       const std::string& dataset_id) {
  txn.exec_params(sql::kLockRequests, erasure_ids);
  Settled out;
  out.removed_in_dataset =
      txn.exec_params1(sql::kDeleteSettledRecords, erasure_ids, model_id,
                       dataset_id)[0]
          .as<int64_t>();
  auto completed = txn.exec_params(sql::kCompleteRequests, erasure_ids);
  for (const auto& r : completed) {
    out.completed.emplace_back(r[0].c_str());
    AppendAudit(txn, actor, "erasure.completed", out.completed.back(), "", "");
  }
  SettleFailedRequests(txn, erasure_ids);
  return out;
}

int SkipTasksOfInvalidModels(pqxx::transaction_base& txn,
                             const std::string& model_id,
                             const std::string& actor) {
  auto skipped = txn.exec_params(sql::kSkipTasksOfInvalidModels, model_id);
  if (skipped.empty()) return 0;
  std::vector<std::string> ids;
  for (const auto& r : skipped) {
    ids.emplace_back(r[0].c_str());
    AppendAudit(txn, actor, "task.skipped", ids.back(), r[1].c_str(),
                R"({"reason":"model invalid"})");
  }
  SettleRequests(txn, UuidArray(ids), actor, "", "");
  txn.exec("NOTIFY lethe_tasks");
  return static_cast<int>(skipped.size());
}

void ExcludeSubjectsBeingErased(pqxx::transaction_base& txn,
                                const std::string& model_id) {
  txn.exec_params(sql::kExcludeSubjectsBeingErased, model_id);
}

absl::StatusOr<int> DeleteVersionsDue(Txn& txn, ArtifactStore* artifacts,
                                      const std::string& actor,
                                      const std::string& model_id) {
  auto due = txn.exec_params(sql::kDeleteDueVersions, model_id);
  for (const auto& r : due) {
    for (int col : {2, 3}) {
      if (r[col].is_null()) continue;
      const std::string digest = ReadBytea(r[col]);
      auto refs = txn.exec_params1(sql::kArtifactReferences, Bytea(digest));
      if (refs[0].as<int64_t>() == 0) {
        if (auto st = artifacts->Delete(txn, digest); !st.ok()) return st;
      }
    }
    AppendAudit(txn, actor, "model.version_deleted", "", r[0].c_str(),
                absl::StrCat("{\"version\":", r[1].as<int64_t>(), "}"));
  }
  return static_cast<int>(due.size());
}

}  // namespace lethe::storage::internal

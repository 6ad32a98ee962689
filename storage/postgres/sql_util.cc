#include "storage/postgres/sql_util.h"

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "storage/queries_sql.h"

namespace lethe::storage::internal {

std::string UuidArray(const std::vector<std::string>& ids) {
  return "{" + absl::StrJoin(ids, ",") + "}";
}

std::vector<std::string> ParseArray(const pqxx::field& f) {
  std::vector<std::string> out;
  if (f.is_null()) return out;
  absl::string_view text = f.c_str();
  if (text.size() < 2) return out;
  text = text.substr(1, text.size() - 2);
  if (text.empty()) return out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    out.emplace_back(part);
  }
  return out;
}

void AppendAudit(pqxx::transaction_base& txn, std::string_view actor,
                 std::string_view action, std::string_view erasure_id,
                 std::string_view model_id, std::string_view details_json) {
  txn.exec_params(sql::kInsertAuditEntry, std::string(actor),
                  std::string(action), std::string(erasure_id),
                  std::string(model_id), std::string(details_json));
}

}  // namespace lethe::storage::internal

// Internal helpers shared by the stores: bytea, uuid[] and time mapping.
#ifndef LETHE_STORAGE_POSTGRES_SQL_UTIL_H_
#define LETHE_STORAGE_POSTGRES_SQL_UTIL_H_

#include <string>
#include <string_view>
#include <vector>

#include <pqxx/binarystring>
#include <pqxx/field>
#include <pqxx/result>
#include <pqxx/transaction_base>

#include "absl/strings/string_view.h"

namespace lethe::storage::internal {

inline pqxx::binarystring Bytea(std::string_view bytes) {
  return pqxx::binarystring(bytes.data(), bytes.size());
}

inline std::string ReadBytea(const pqxx::field& f) {
  if (f.is_null()) return {};
  return pqxx::binarystring(f).str();
}

inline int64_t ReadInt64(const pqxx::field& f) {
  return f.is_null() ? 0 : f.as<int64_t>();
}

// A PostgreSQL array literal of ids already validated as UUIDs.
std::string UuidArray(const std::vector<std::string>& ids);
// Parses '{a,b}' array text of simple elements (uuids, integers).
std::vector<std::string> ParseArray(const pqxx::field& f);

// Appends an audit_log row.
void AppendAudit(pqxx::transaction_base& txn, std::string_view actor,
                 std::string_view action, std::string_view erasure_id,
                 std::string_view model_id, std::string_view details_json);

}  // namespace lethe::storage::internal

#endif  // LETHE_STORAGE_POSTGRES_SQL_UTIL_H_

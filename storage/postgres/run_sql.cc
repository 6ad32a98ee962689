#include "storage/postgres/run_sql.h"

#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/result>

#include "storage/postgres/database.h"

namespace lethe::storage {

absl::StatusOr<std::vector<SqlRow>> RunSql(const std::string& url,
                                           const std::string& sql) {
  try {
    pqxx::connection conn(url);
    pqxx::nontransaction txn(conn);
    const pqxx::result result = txn.exec(sql);
    std::vector<SqlRow> rows;
    rows.reserve(result.size());
    for (const auto& r : result) {
      SqlRow row;
      for (const auto& field : r) {
        row.push_back(field.is_null()
                          ? std::nullopt
                          : std::optional(std::string(field.c_str())));
      }
      rows.push_back(std::move(row));
    }
    return rows;
  } catch (const std::exception&) {
    return StatusFromCurrentException();
  }
}

}  // namespace lethe::storage

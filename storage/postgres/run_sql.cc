#include "storage/postgres/run_sql.h"

#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/result>

#include "storage/postgres/database.h"

namespace lethe::storage {

struct SqlSession::Impl {
  explicit Impl(const std::string& url) : conn(url) {}
  pqxx::connection conn;
};

SqlSession::SqlSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqlSession::~SqlSession() = default;

absl::StatusOr<std::unique_ptr<SqlSession>> SqlSession::Open(
    const std::string& url) {
  try {
    return std::unique_ptr<SqlSession>(
        new SqlSession(std::make_unique<Impl>(url)));
  } catch (const std::exception&) {
    return StatusFromCurrentException();
  }
}

absl::StatusOr<std::vector<SqlRow>> SqlSession::Exec(const std::string& sql) {
  try {
    pqxx::nontransaction txn(impl_->conn);
    const pqxx::result result = txn.exec(sql);
    std::vector<SqlRow> rows;
    rows.reserve(result.size());
    for (const auto& r : result) {
      SqlRow row;
      row.reserve(r.size());
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

absl::StatusOr<std::vector<SqlRow>> RunSql(const std::string& url,
                                           const std::string& sql) {
  absl::StatusOr<std::unique_ptr<SqlSession>> session = SqlSession::Open(url);
  if (!session.ok()) return session.status();
  return (*session)->Exec(sql);
}

}  // namespace lethe::storage

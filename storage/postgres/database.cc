#include "storage/postgres/database.h"

#include <chrono>
#include <exception>
#include <utility>

#include <pqxx/except>
#include <pqxx/nontransaction>

#include "absl/strings/str_cat.h"
#include "storage/queries_sql.h"
#include "storage/reachability.h"

namespace lethe::storage {

absl::Status StatusFromCurrentException() {
  try {
    throw;
  } catch (const pqxx::in_doubt_error& e) {
    // libpq's text names the server's host, port and user: it goes into
    // the payload, for logs (reachability.h); clients see the message.
    return WithErrorDetail(
        absl::UnavailableError(
            "database connection lost during commit; outcome unknown; retry "
            "with backoff (the same idempotency key makes a retry safe)"),
        e.what());
  } catch (const pqxx::broken_connection& e) {
    return WithErrorDetail(absl::UnavailableError(kDatabaseUnavailable),
                           e.what());
    // PostgreSQL's text (SQL, constraint and column names, values) goes to
    // the payload too, for logs; the message a client may see is generic
    // (issue 17, item 11).
  } catch (const pqxx::unique_violation& e) {
    return WithErrorDetail(
        absl::AlreadyExistsError("the row exists already (a unique key)"),
        e.what());
  } catch (const pqxx::transaction_rollback& e) {
    return WithErrorDetail(
        absl::AbortedError("the database transaction conflicted with another; "
                           "retry"),
        e.what());
  } catch (const pqxx::insufficient_resources& e) {
    return WithErrorDetail(absl::ResourceExhaustedError(
                               "the database is out of resources; retry later"),
                           e.what());
  } catch (const pqxx::sql_error& e) {
    return WithErrorDetail(absl::InternalError("database error"),
                           absl::StrCat(e.what(), " [", e.sqlstate(), "]"));
  } catch (const std::exception& e) {
    return WithErrorDetail(absl::InternalError("database error"), e.what());
  } catch (...) {
    return absl::InternalError("database error: unknown exception");
  }
}

Database::Database(DatabaseOptions options) : options_(std::move(options)) {}

Database::~Database() = default;

absl::StatusOr<std::unique_ptr<pqxx::connection>> Database::OpenDedicated()
    const {
  try {
    return std::make_unique<pqxx::connection>(options_.url);
  } catch (...) {
    return StatusFromCurrentException();
  }
}

std::unique_ptr<pqxx::connection> Database::Acquire(absl::Status* status) {
  std::unique_lock lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::seconds(options_.acquire_timeout_seconds);
  while (idle_.empty() && open_ >= options_.pool_size) {
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
        idle_.empty() && open_ >= options_.pool_size) {
      *status = absl::ResourceExhaustedError(
          "no free database connection; raise the pool size");
      return nullptr;
    }
  }
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
  }
  ++open_;
  lock.unlock();
  auto conn = OpenDedicated();
  if (!conn.ok()) {
    std::lock_guard relock(mu_);
    --open_;
    cv_.notify_one();
    *status = conn.status();
    return nullptr;
  }
  return std::move(conn).value();
}

void Database::Release(std::unique_ptr<pqxx::connection> conn) {
  std::lock_guard lock(mu_);
  if (conn && conn->is_open()) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
  cv_.notify_one();
}

template <typename Tx, typename Fn>
absl::Status Database::Run(const Fn& fn) {
  absl::Status result;
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::Status acquire_status;
    auto conn = Acquire(&acquire_status);
    if (!conn) return acquire_status;
    bool from_exception = false;
    try {
      Tx tx(*conn);
      result = fn(tx);
      if (result.ok()) tx.commit();
    } catch (...) {
      result = StatusFromCurrentException();
      from_exception = true;
    }
    if (absl::IsUnavailable(result)) conn.reset();  // drop a broken link
    Release(std::move(conn));
    // Only a serialization failure or deadlock raised by PostgreSQL is
    // retried; an ABORTED chosen by `fn` is its answer.
    if (!(from_exception && absl::IsAborted(result))) return result;
  }
  return result;
}

absl::Status Database::Transact(const std::function<absl::Status(Txn&)>& fn) {
  return Run<Txn>(fn);
}

absl::Status Database::Autocommit(
    const std::function<absl::Status(pqxx::nontransaction&)>& fn) {
  return Run<pqxx::nontransaction>(fn);
}

absl::Status Database::Ping() {
  return Transact([](Txn& txn) {
    txn.exec(sql::kPing);
    return absl::OkStatus();
  });
}

}  // namespace lethe::storage

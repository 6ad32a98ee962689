#include "storage/postgres/backend.h"

#include <pqxx/notification>
#include <pqxx/result>

#include "storage/postgres/artifact_store.h"
#include "storage/postgres/erasure_store.h"
#include "storage/postgres/migrations.h"
#include "storage/postgres/stores.h"
#include "storage/postgres/work_queue.h"
#include "storage/queries_sql.h"

namespace lethe::storage {
namespace {

// One row of queries/queue_stats.sql, which scans erasure_requests and
// erasure_tasks once each for the counts (index-only on the state indexes
// where PostgreSQL can), plus two min()s, the log head's one row and a max()
// on the checkpoints' primary key.
void AddStatsRow(const pqxx::row& row, QueueStats& s) {
  const std::string kind = row[0].as<std::string>();
  const double value = row[2].as<double>();
  if (kind == "request") {
    s.requests[row[1].as<std::string>()] = value;
  } else if (kind == "task") {
    s.tasks[row[1].as<std::string>()] = value;
  } else if (kind == "oldest_queued_task") {
    s.oldest_queued_task_age_seconds = value;
  } else if (kind == "oldest_open_request") {
    s.oldest_open_request_age_seconds = value;
  } else if (kind == "retries") {
    s.task_retries = value;
  } else if (kind == "log_entries") {
    s.log_entries = value;
  } else if (kind == "checkpoint_entries") {
    s.checkpoint_entries = value;
  }
}

// Collects notifications; LISTENs on its channel while it exists.
class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, const std::string& channel,
           std::vector<std::string>* payloads)
      : pqxx::notification_receiver(conn, channel), payloads_(payloads) {}
  void operator()(const std::string& payload, int) override {
    payloads_->push_back(payload);
  }

 private:
  std::vector<std::string>* payloads_;
};

class PgChangeListener final : public ChangeListener {
 public:
  explicit PgChangeListener(std::unique_ptr<pqxx::connection> conn)
      : conn_(std::move(conn)) {}
  ~PgChangeListener() override {
    receivers_.clear();  // before the connection they listen on
  }

  absl::Status Subscribe(const std::vector<std::string>& channels) {
    try {
      for (const auto& c : channels) {
        receivers_.push_back(std::make_unique<Receiver>(*conn_, c, &payloads_));
      }
      return absl::OkStatus();
    } catch (const std::exception&) {
      return StatusFromCurrentException();
    }
  }

  absl::StatusOr<std::vector<std::string>> Wait(
      std::chrono::milliseconds timeout) override {
    try {
      if (!conn_->is_open()) {
        return absl::UnavailableError("change listener connection closed");
      }
      conn_->get_notifs();  // those that arrived before
      if (payloads_.empty()) {
        conn_->await_notification(
            timeout.count() / 1000,
            static_cast<int64_t>((timeout.count() % 1000) * 1000));
      }
      std::vector<std::string> out;
      out.swap(payloads_);
      return out;
    } catch (const std::exception&) {
      return StatusFromCurrentException();
    }
  }

 private:
  std::unique_ptr<pqxx::connection> conn_;
  std::vector<std::unique_ptr<Receiver>> receivers_;
  std::vector<std::string> payloads_;
};

class PgBackend final : public PostgresBackend {
 public:
  explicit PgBackend(const PostgresOptions& o)
      : db_(DatabaseOptions{o.url, o.pool_size, o.acquire_timeout_seconds}),
        stats_db_(DatabaseOptions{o.url, 1, 5}),
        artifacts_(o.artifact_dir.empty()
                       ? NewPostgresArtifactStore()
                       : NewFilesystemArtifactStore(o.artifact_dir)),
        erasures_(&db_, o.intake),
        datasets_(&db_),
        models_(&db_, artifacts_.get()),
        api_keys_(&db_),
        certificates_(&db_) {}

  absl::Status Prepare(bool migrate) override {
    if (migrate) return Migrate(db_).status();
    return CheckSchemaCurrent(db_);
  }
  absl::Status Ping() override { return db_.Ping(); }
  ErasureStore& erasures() override { return erasures_; }
  DatasetStore& datasets() override { return datasets_; }
  ModelStore& models() override { return models_; }
  ApiKeyStore& api_keys() override { return api_keys_; }
  CertificateStore& certificates() override { return certificates_; }
  Database& database() override { return db_; }

  std::unique_ptr<WorkQueue> NewWorkQueue(
      const QueueOptions& options) override {
    return std::make_unique<PgWorkQueue>(&db_, artifacts_.get(), options);
  }

  absl::StatusOr<std::unique_ptr<ChangeListener>> Listen(
      const std::vector<std::string>& channels) override {
    auto conn = db_.OpenDedicated();
    if (!conn.ok()) return conn.status();
    auto listener = std::make_unique<PgChangeListener>(std::move(*conn));
    if (auto st = listener->Subscribe(channels); !st.ok()) return st;
    return std::unique_ptr<ChangeListener>(std::move(listener));
  }

  absl::StatusOr<QueueStats> ReadQueueStats() override {
    return stats_db_.TransactValue<QueueStats>(
        [](Txn& txn) -> absl::StatusOr<QueueStats> {
          // A scrape must not hang on a lock or a slow plan.
          txn.exec("SET LOCAL statement_timeout = '5s'");
          QueueStats s;
          for (const auto& row : txn.exec(sql::kQueueStats)) {
            AddStatsRow(row, s);
          }
          return s;
        });
  }

 private:
  Database db_;
  Database stats_db_;
  std::unique_ptr<ArtifactStore> artifacts_;
  // Destroyed before db_, which its writers use until they finish.
  PgErasureStore erasures_;
  PgDatasetStore datasets_;
  PgModelStore models_;
  PgApiKeyStore api_keys_;
  PgCertificateStore certificates_;
};

}  // namespace

std::unique_ptr<PostgresBackend> OpenPostgres(const PostgresOptions& options) {
  return std::make_unique<PgBackend>(options);
}

}  // namespace lethe::storage

// QueueCollector against known rows in a real PostgreSQL: counts per state,
// ages, retries, caching, and what a scrape shows while the database is
// unreachable.
#include "observability/queue_collector.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"
#include "storage/postgres/backend.h"
#include "storage/postgres/migrations.h"
#include "storage/postgres/run_sql.h"
#include "storage/reachability.h"
#include "tests/observability/metrics_test_util.h"
#include "tests/support/process.h"
#include "tests/support/scratch_database.h"

namespace lethe::testing {
namespace {

using observability::DatabaseMetrics;
using observability::QueueCollector;

constexpr char kM1[] = "11111111-1111-1111-1111-111111111111";
constexpr char kM2[] = "22222222-2222-2222-2222-222222222222";

// The rows of `sql`, which must succeed.
std::vector<storage::SqlRow> Exec(const std::string& url,
                                  const std::string& sql) {
  auto rows = storage::RunSql(url, sql);
  EXPECT_TRUE(rows.ok()) << storage::ErrorDetail(rows.status()) << ": " << sql;
  return rows.ok() ? *rows : std::vector<storage::SqlRow>{};
}

std::string InsertRequest(const std::string& url, const std::string& key,
                          const std::string& state, const std::string& age) {
  auto r = Exec(
      url,
      absl::StrCat(
          "INSERT INTO erasure_requests (client_key_id, idempotency_key, "
          "body_sha256, subject_commitment, legal_ground, state, created_at) "
          "VALUES ('c', '",
          key,
          "', decode(repeat('00', 32), 'hex'), "
          "decode(repeat('00', 32), 'hex'), 'GDPR', '",
          state, "', now() - interval '", age, "') RETURNING id"));
  return r.empty() ? "" : r[0][0].value_or("");
}

void InsertTask(const std::string& url, const std::string& erasure,
                const std::string& model, const std::string& state,
                int attempts, const std::string& age) {
  Exec(url,
       absl::StrCat("INSERT INTO erasure_tasks (erasure_id, model_id, state, "
                    "attempts, created_at) VALUES ('",
                    erasure, "', '", model, "', '", state, "', ", attempts,
                    ", now() - interval '", age, "')"));
}

class QueueCollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto scratch = ScratchDatabase::Create("lethe_obs_queue");
    ASSERT_TRUE(scratch.ok()) << scratch.status();
    scratch_ = std::make_unique<ScratchDatabase>(std::move(*scratch));
    db_ = storage::OpenPostgres({.url = scratch_->url(), .pool_size = 1});
    auto migrated = db_->Prepare(/*migrate=*/true);
    ASSERT_TRUE(migrated.ok()) << migrated;
    Exec(url(),
         "INSERT INTO datasets (id, name, feature_shape, feature_type, "
         "num_classes) VALUES ('33333333-3333-3333-3333-333333333333', 'd', "
         "'{4}', 'float32', 3)");
    for (const char* m : {kM1, kM2}) {
      Exec(url(),
           absl::StrCat("INSERT INTO models (id, name, dataset_id, "
                        "architecture, recipe, policy, state) VALUES ('",
                        m, "', 'm", m,
                        "', '33333333-3333-3333-3333-333333333333', '{}', "
                        "'{}', '{}', 'READY')"));
    }
  }

  const std::string& url() const { return scratch_->url(); }

  std::unique_ptr<ScratchDatabase> scratch_;
  std::unique_ptr<storage::PostgresBackend> db_;
  prometheus::Registry registry_;
  DatabaseMetrics errors_{registry_};
};

TEST_F(QueueCollectorTest, ReportsStatesAgesAndRetriesOfKnownRows) {
  const std::string old = InsertRequest(url(), "a", "QUEUED", "5 hours");
  const std::string fresh = InsertRequest(url(), "b", "QUEUED", "1 minute");
  const std::string running = InsertRequest(url(), "c", "RUNNING", "2 hours");
  const std::string done = InsertRequest(url(), "d", "COMPLETED", "9 hours");
  InsertTask(url(), old, kM1, "QUEUED", 0, "3 hours");
  InsertTask(url(), fresh, kM1, "QUEUED", 0, "1 minute");
  InsertTask(url(), running, kM1, "LEASED", 2, "2 hours");
  InsertTask(url(), running, kM2, "DEAD", 5, "2 hours");
  InsertTask(url(), done, kM1, "DONE", 1, "9 hours");

  QueueCollector collector(db_.get(), &errors_);
  const auto f = collector.Collect();
  EXPECT_EQ(GaugeValue(f, "lethe_database_up"), 1);
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_requests", {{"state", "queued"}}), 2);
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_requests", {{"state", "running"}}), 1);
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_requests", {{"state", "completed"}}),
            1);
  // States without rows are reported as 0, not left out.
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_requests", {{"state", "failed"}}), 0);
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_tasks", {{"state", "queued"}}), 2);
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_tasks", {{"state", "leased"}}), 1);
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_tasks", {{"state", "dead"}}), 1);
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_tasks", {{"state", "done"}}), 1);
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_tasks", {{"state", "cancelled"}}), 0);
  EXPECT_NEAR(GaugeValue(f, "lethe_erasure_tasks_oldest_queued_age_seconds"),
              3 * 3600, 120);
  EXPECT_NEAR(GaugeValue(f, "lethe_erasure_requests_oldest_open_age_seconds"),
              5 * 3600, 120);
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_task_retries"), (2 - 1) + (5 - 1));
  EXPECT_EQ(CounterValue(registry_.Collect(), "lethe_database_errors_total",
                         {{"operation", "queue_stats"}}),
            -1);
}

TEST_F(QueueCollectorTest, ReportsCertificateLogAndCheckpointSizes) {
  QueueCollector empty(db_.get(), &errors_);
  EXPECT_EQ(GaugeValue(empty.Collect(), "lethe_certificate_log_entries"), 0);
  for (int i = 0; i < 3; ++i) {
    Exec(url(),
         absl::StrCat("INSERT INTO certificate_log (leaf_index, leaf_hash) "
                      "VALUES (",
                      i, ", decode(repeat('ab', 32), 'hex'))"));
    Exec(url(), absl::StrCat("UPDATE certificate_log_head SET size = ", i + 1));
  }
  Exec(url(),
       "INSERT INTO certificate_checkpoints (tree_size, root_hash, note, "
       "key_id) VALUES (2, decode(repeat('cd', 32), 'hex'), 'n', 'k')");
  QueueCollector collector(db_.get(), &errors_);
  const auto f = collector.Collect();
  EXPECT_EQ(GaugeValue(f, "lethe_certificate_log_entries"), 3);
  EXPECT_EQ(GaugeValue(f, "lethe_certificate_log_checkpoint_entries"), 2);
}

TEST_F(QueueCollectorTest, EmptyQueueHasZeroAges) {
  QueueCollector collector(db_.get(), &errors_);
  const auto f = collector.Collect();
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_tasks_oldest_queued_age_seconds"), 0);
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_requests_oldest_open_age_seconds"), 0);
  EXPECT_EQ(GaugeValue(f, "lethe_erasure_requests", {{"state", "queued"}}), 0);
}

TEST_F(QueueCollectorTest, CachesTheQueryResultForItsTtl) {
  QueueCollector cached(db_.get(), &errors_, std::chrono::hours(1));
  QueueCollector uncached(db_.get(), &errors_, std::chrono::milliseconds(0));
  EXPECT_EQ(GaugeValue(cached.Collect(), "lethe_erasure_requests",
                       {{"state", "queued"}}),
            0);
  InsertRequest(url(), "a", "QUEUED", "1 second");
  EXPECT_EQ(GaugeValue(cached.Collect(), "lethe_erasure_requests",
                       {{"state", "queued"}}),
            0);
  EXPECT_EQ(GaugeValue(uncached.Collect(), "lethe_erasure_requests",
                       {{"state", "queued"}}),
            1);
}

TEST(QueueCollectorDownTest, UnreachableDatabaseReportsDownAndCountsErrors) {
  const int port = FreePort();
  ASSERT_NE(port, 0);
  auto db = storage::OpenPostgres(
      {.url = absl::StrCat("postgresql://lethe@127.0.0.1:", port, "/lethe"),
       .pool_size = 1,
       .acquire_timeout_seconds = 1});
  prometheus::Registry registry;
  DatabaseMetrics errors(registry);
  QueueCollector collector(db.get(), &errors, std::chrono::milliseconds(0));
  auto f = collector.Collect();
  EXPECT_EQ(GaugeValue(f, "lethe_database_up"), 0);
  EXPECT_FALSE(FindSample(f, "lethe_erasure_requests", {{"state", "queued"}}));
  collector.Collect();
  EXPECT_EQ(CounterValue(registry.Collect(), "lethe_database_errors_total",
                         {{"operation", "queue_stats"}}),
            2);
}

}  // namespace
}  // namespace lethe::testing

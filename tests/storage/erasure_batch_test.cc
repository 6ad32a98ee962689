// Integration tests of ErasureStore's group commit: concurrent Submit calls
// share transactions, yet each caller gets the result it would have got
// alone, and idempotency holds inside a batch as across batches.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "storage/hash.h"
#include "storage/postgres/database.h"
#include "storage/postgres/erasure_store.h"
#include "storage/postgres/migrations.h"
#include "storage/postgres/run_sql.h"
#include "tests/support/scratch_database.h"

namespace lethe::storage {
namespace {

constexpr char kModel[] = "00000000-0000-4000-8000-0000000000a1";
constexpr char kUnknownModel[] = "00000000-0000-4000-8000-0000000000ff";

std::string SubjectKey(const std::string& subject) {
  return Sha256(absl::StrCat("subject:", subject));
}

SubmitParams Params(const std::string& key, const std::string& subject,
                    std::vector<std::string> scope = {}) {
  SubmitParams p;
  p.client_key_id = "client-1";
  p.idempotency_key = key;
  p.subject_key = SubjectKey(subject);
  p.subject_commitment = Sha256(absl::StrCat("commitment:", key));
  p.legal_ground = "GDPR_ART17_1B_CONSENT_WITHDRAWN";
  p.legal_reference = R"(ticket "42" \ {a,b})";  // array-literal hostile
  p.scope_model_ids = std::move(scope);
  p.body_sha256 =
      Sha256(absl::StrCat(subject, "|", absl::StrJoin(p.scope_model_ids, ",")));
  return p;
}

class ErasureBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto scratch = testing::ScratchDatabase::Create("erasure_batch");
    ASSERT_TRUE(scratch.ok()) << scratch.status();
    scratch_ =
        std::make_unique<testing::ScratchDatabase>(std::move(scratch).value());
    db_ = std::make_unique<Database>(DatabaseOptions{scratch_->url(), 8, 30});
    ASSERT_TRUE(Migrate(*db_).ok());
    // One dataset holding records of subject "known", one model on it.
    ASSERT_TRUE(
        RunSql(scratch_->url(),
               absl::StrCat("BEGIN; "
                            "INSERT INTO datasets (id, name, feature_shape, "
                            "feature_type, num_classes) VALUES "
                            "('00000000-0000-4000-8000-0000000000d1', 'd', "
                            "'{2}', 'uint8', 2); "
                            "INSERT INTO records (dataset_id, subject_key, "
                            "label, split, features) VALUES "
                            "('00000000-0000-4000-8000-0000000000d1', '\\x",
                            ToHex(SubjectKey("known")),
                            "', 0, 'train', '\\x0102'); "
                            "INSERT INTO models (id, name, dataset_id, "
                            "architecture, recipe, policy, state) VALUES ('",
                            kModel,
                            "', 'm', '00000000-0000-4000-8000-0000000000d1', "
                            "'{}', '{}', '{}', 'READY'); COMMIT"))
            .ok());
  }

  int64_t Count(const std::string& sql) {
    auto rows = RunSql(scratch_->url(), sql);
    EXPECT_TRUE(rows.ok() && rows->size() == 1 && rows->front()[0]) << sql;
    int64_t n = -1;
    if (rows.ok() && rows->size() == 1 && rows->front()[0]) {
      EXPECT_TRUE(absl::SimpleAtoi(*rows->front()[0], &n));
    }
    return n;
  }

  // Opens a session that inserts a request under `key` (a plain test
  // key: no quotes) in a transaction it leaves open, so that a submission
  // of the same key waits on the unique index until the session ends
  // (destroyed: the transaction rolls back).
  std::unique_ptr<SqlSession> HoldKey(const std::string& key) {
    auto blocker = SqlSession::Open(scratch_->url());
    EXPECT_TRUE(blocker.ok()) << blocker.status();
    if (!blocker.ok()) return nullptr;
    const auto held = (*blocker)->Exec(absl::StrCat(
        "BEGIN; INSERT INTO erasure_requests (client_key_id, "
        "idempotency_key, body_sha256, subject_commitment, legal_ground, "
        "state) VALUES ('client-1', '",
        key,
        "', '\\x00', "
        "'\\x0000000000000000000000000000000000000000000000000000000000000000',"
        " 'x', 'QUEUED')"));
    EXPECT_TRUE(held.ok()) << held.status();
    return std::move(blocker).value();
  }

  std::unique_ptr<testing::ScratchDatabase> scratch_;
  std::unique_ptr<Database> db_;
};

TEST_F(ErasureBatchTest, ConcurrentIdenticalSubmissionsCreateOneRequest) {
  PgErasureStore store(db_.get());
  const SubmitParams params = Params("same-key", "known");
  std::vector<absl::StatusOr<SubmitResult>> results(
      32, absl::InternalError("not run"));
  std::vector<std::thread> threads;
  threads.reserve(32);
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&, i] { results[i] = store.Submit(params); });
  }
  for (auto& t : threads) t.join();

  std::set<std::string> ids;
  int created = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    ids.insert(r->erasure.id);
    created += r->replayed ? 0 : 1;
    EXPECT_EQ(r->erasure.state, "QUEUED");
    ASSERT_EQ(r->erasure.tasks.size(), 1u);
    EXPECT_EQ(r->erasure.tasks[0].model_id, kModel);
  }
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(created, 1);
  EXPECT_EQ(Count("SELECT count(*) FROM erasure_requests"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM erasure_tasks"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM audit_log "
                  "WHERE action = 'erasure.submitted'"),
            1);
}

TEST_F(ErasureBatchTest, ReusedKeyWithTwoBodiesCreatesOneRequest) {
  PgErasureStore store(db_.get());
  const SubmitParams a = Params("contested", "known");
  const SubmitParams b = Params("contested", "unknown");
  std::vector<absl::StatusOr<SubmitResult>> results(
      32, absl::InternalError("not run"));
  std::vector<std::thread> threads;
  threads.reserve(32);
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back(
        [&, i] { results[i] = store.Submit(i % 2 == 0 ? a : b); });
  }
  for (auto& t : threads) t.join();

  ASSERT_EQ(Count("SELECT count(*) FROM erasure_requests"), 1);
  // The winner's body decides: its 16 callers succeed, the other 16 get
  // ALREADY_EXISTS.
  const bool a_won =
      Count("SELECT count(*) FROM erasure_requests WHERE state = 'QUEUED'") ==
      1;
  for (int i = 0; i < 32; ++i) {
    const bool same_body_as_winner = (i % 2 == 0) == a_won;
    if (same_body_as_winner) {
      EXPECT_TRUE(results[i].ok()) << results[i].status();
    } else {
      EXPECT_TRUE(absl::IsAlreadyExists(results[i].status()))
          << results[i].status();
    }
  }
}

// Holds the first Submit inside its transaction (its key is locked by an
// uncommitted row) while 31 more calls queue; they then run as one batch:
// one transaction, so one created_at. Each still gets its own outcome.
TEST_F(ErasureBatchTest, QueuedSubmissionsShareOneTransactionAndOwnResults) {
  PgErasureStore store(db_.get(),
                       {.max_batch = 64, .max_concurrent_batches = 1});
  std::unique_ptr<SqlSession> blocker = HoldKey("first");
  ASSERT_NE(blocker, nullptr);
  absl::StatusOr<SubmitResult> first = absl::InternalError("not run");
  std::thread first_thread(
      [&] { first = store.Submit(Params("first", "known")); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  std::vector<SubmitParams> params;
  params.reserve(27);
  for (int i = 0; i < 26; ++i) {
    params.push_back(
        Params(absl::StrCat("k", i), i % 2 == 0 ? "known" : "unknown"));
  }
  params.push_back(Params("scoped-ok", "known", {kModel}));
  params.push_back(Params("scoped-bad", "known", {kModel, kUnknownModel}));
  params.push_back(Params("dup", "known"));
  params.push_back(Params("dup", "known"));
  std::vector<absl::StatusOr<SubmitResult>> results(
      params.size(), absl::InternalError("not run"));
  std::atomic<int> started = 0;
  std::vector<std::thread> threads;
  for (size_t i = 0; i < params.size(); ++i) {
    threads.emplace_back([&, i] {
      ++started;
      results[i] = store.Submit(params[i]);
    });
  }
  while (started < static_cast<int>(params.size())) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  blocker.reset();  // rolls the held row back
  first_thread.join();
  for (auto& t : threads) t.join();

  ASSERT_TRUE(first.ok()) << first.status();
  std::set<int64_t> created_at;
  for (int i = 0; i < 26; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
    const ErasureRow& e = results[i]->erasure;
    EXPECT_FALSE(results[i]->replayed);
    EXPECT_EQ(e.idempotency_key, absl::StrCat("k", i));
    EXPECT_EQ(e.legal_reference, "ticket \"42\" \\ {a,b}");
    EXPECT_EQ(e.state, i % 2 == 0 ? "QUEUED" : "NOTHING_TO_ERASE");
    EXPECT_EQ(e.tasks.size(), i % 2 == 0 ? 1u : 0u);
    created_at.insert(e.created_us);
  }
  ASSERT_TRUE(results[26].ok()) << results[26].status();
  EXPECT_EQ(results[26]->erasure.scope_model_ids,
            std::vector<std::string>{kModel});
  EXPECT_EQ(results[26]->erasure.tasks.size(), 1u);
  created_at.insert(results[26]->erasure.created_us);
  EXPECT_TRUE(absl::IsNotFound(results[27].status())) << results[27].status();
  EXPECT_NE(results[27].status().message().find(kUnknownModel),
            std::string::npos);
  // "dup": the first use creates, the same body replays; which of the two
  // identical calls created depends on order.
  ASSERT_TRUE(results[28].ok()) << results[28].status();
  ASSERT_TRUE(results[29].ok()) << results[29].status();
  EXPECT_EQ(results[28]->erasure.id, results[29]->erasure.id);
  EXPECT_NE(results[28]->replayed, results[29]->replayed);
  // The same key with another body, once the first use exists: refused.
  // (Queued with the others it could have been the one that created, if
  // its thread reached the queue first.)
  auto other_body = store.Submit(Params("dup", "unknown"));
  EXPECT_TRUE(absl::IsAlreadyExists(other_body.status()))
      << other_body.status();
  created_at.insert(results[28]->erasure.created_us);
  EXPECT_EQ(created_at.size(), 1u) << "the queued calls did not share one "
                                      "transaction";

  // 1 first + 26 + scoped-ok + dup; nothing from scoped-bad.
  EXPECT_EQ(Count("SELECT count(*) FROM erasure_requests"), 29);
  EXPECT_EQ(Count("SELECT count(*) FROM erasure_requests "
                  "WHERE idempotency_key = 'scoped-bad'"),
            0);
  EXPECT_EQ(Count("SELECT count(*) FROM erasure_tasks"), 1 + 13 + 1 + 1);
  EXPECT_EQ(Count("SELECT count(*) FROM erasure_requests WHERE state = "
                  "'NOTHING_TO_ERASE' AND subject_key IS NULL AND "
                  "completed_at IS NOT NULL"),
            13);
  EXPECT_EQ(Count("SELECT count(*) FROM audit_log "
                  "WHERE action = 'erasure.submitted'"),
            29);
  EXPECT_EQ(Count("SELECT count(*) FROM audit_log WHERE action = "
                  "'erasure.submitted' AND details = "
                  "'{\"tasks\": 1, \"records_deleted\": 0}'"),
            16);
}

// SubmitAsync: every callback runs exactly once with its own result, the
// queued submissions of a blocked batch go into one transaction, and the
// destructor writes what was queued before it returns; a submission made
// while it drains is refused with UNAVAILABLE instead of being lost.
TEST_F(ErasureBatchTest, AsyncCallbacksRunOnceAndTheDestructorDrainsTheQueue) {
  std::vector<size_t> batch_sizes;  // only the one writer appends
  auto store = std::make_unique<PgErasureStore>(
      db_.get(), ErasureStoreOptions{.max_batch = 64,
                                     .max_concurrent_batches = 1,
                                     .finisher_threads = 2,
                                     .on_batch = [&](size_t n, double seconds) {
                                       EXPECT_GE(seconds, 0);
                                       batch_sizes.push_back(n);
                                     }});
  std::unique_ptr<SqlSession> blocker = HoldKey("a-first");
  ASSERT_NE(blocker, nullptr);
  constexpr int kQueued = 20;
  std::mutex mu;
  std::vector<int> calls(kQueued + 1, 0);
  std::vector<absl::StatusOr<SubmitResult>> results(
      kQueued + 1, absl::InternalError("not run"));
  absl::Status during_drain = absl::InternalError("not run");
  auto record = [&](int i) {
    return [&, i](absl::StatusOr<SubmitResult> r) {
      std::lock_guard lock(mu);
      ++calls[i];
      results[i] = std::move(r);
    };
  };
  // Waits on the blocker's uncommitted row for the same key.
  store->SubmitAsync(Params("a-first", "known"), record(0));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (int i = 1; i <= kQueued; ++i) {
    store->SubmitAsync(
        Params(absl::StrCat("a", i), "known"),
        [&, i, s = store.get(),
         inner = record(i)](absl::StatusOr<SubmitResult> r) mutable {
          if (i == 1) {  // the destructor is draining by now
            s->SubmitAsync(Params("a-late", "known"),
                           [&](const absl::StatusOr<SubmitResult>& l) {
                             during_drain = l.status();
                           });
          }
          inner(std::move(r));
        });
  }
  std::thread destroy([&] { store.reset(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  blocker.reset();  // rolls the held row back
  destroy.join();

  std::set<int64_t> created_at;
  for (int i = 0; i <= kQueued; ++i) {
    EXPECT_EQ(calls[i], 1) << i;
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
    EXPECT_FALSE(results[i]->replayed);
    EXPECT_EQ(results[i]->erasure.state, "QUEUED");
    if (i > 0) created_at.insert(results[i]->erasure.created_us);
  }
  EXPECT_EQ(created_at.size(), 1u) << "the queued submissions did not share "
                                      "one transaction";
  EXPECT_TRUE(absl::IsUnavailable(during_drain)) << during_drain;
  EXPECT_EQ(batch_sizes, (std::vector<size_t>{1, kQueued}));
  EXPECT_EQ(Count("SELECT count(*) FROM erasure_requests"), kQueued + 1);
  EXPECT_EQ(Count("SELECT count(*) FROM erasure_requests "
                  "WHERE idempotency_key = 'a-late'"),
            0);
}

}  // namespace
}  // namespace lethe::storage

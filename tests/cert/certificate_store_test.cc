// CertificateStore on a real PostgreSQL: exactly one certificate per
// request under concurrency, a log with no gaps, proofs that verify against
// the stored checkpoints, and append-only tables.
#include <atomic>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "cert/bundle.h"
#include "cert/checkpoint.h"
#include "cert/merkle.h"
#include "storage/hash.h"
#include "storage/postgres/migrations.h"
#include "storage/postgres/run_sql.h"
#include "storage/postgres/stores.h"
#include "storage/reachability.h"
#include "tests/cert/cert_test_util.h"
#include "tests/support/scratch_database.h"

namespace lethe::storage {
namespace {

constexpr char kOrigin[] = "lethe.test/log";

class CertificateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto scratch = testing::ScratchDatabase::Create("lethe_cert");
    ASSERT_TRUE(scratch.ok()) << scratch.status();
    scratch_ = std::make_unique<testing::ScratchDatabase>(std::move(*scratch));
    db_ = std::make_unique<Database>(DatabaseOptions{scratch_->url(), 16, 30});
    ASSERT_TRUE(Migrate(*db_).ok());
    store_ = std::make_unique<PgCertificateStore>(db_.get());
    key_ = cert::PrivateKey::Generate();
    key_.set_info({kOrigin, 0, 0});
    keys_ = cert::KeyRing({key_});
  }

  // Inserts a COMPLETED erasure request and returns its id.
  std::string NewRequest() {
    auto rows = RunSql(
        scratch_->url(),
        "INSERT INTO erasure_requests (client_key_id, idempotency_key, "
        "body_sha256, subject_commitment, legal_ground, state) VALUES ('k1', "
        "gen_random_uuid()::text, decode(repeat('78', 32), 'hex'), "
        "decode(repeat('78', 32), 'hex'), 'GDPR_ART17_1A_NO_LONGER_NECESSARY', "
        "'COMPLETED') RETURNING id::text");
    EXPECT_TRUE(rows.ok()) << ErrorDetail(rows.status());
    return rows.ok() ? (*rows)[0][0].value_or("") : "";
  }

  std::vector<cert::PublicKey> PublicKeys() const { return keys_.PublicKeys(); }

  std::unique_ptr<testing::ScratchDatabase> scratch_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<PgCertificateStore> store_;
  cert::PrivateKey key_ = cert::PrivateKey::Generate();
  cert::KeyRing keys_;
};

// Issue 17, item 4: issuing stores the subtrees each leaf completes, so
// proofs read O(log n) rows; a log from before migration 8 (no nodes) gets
// its nodes computed from the leaves when first needed, with the same
// roots and proofs.
TEST_F(CertificateStoreTest, InteriorNodesAreStoredAndRecomputedWhenMissing) {
  constexpr int kLeaves = 13;
  std::vector<std::string> leaves;
  for (int i = 0; i < kLeaves; ++i) {
    auto issued = store_->Issue(testing::SampleRecord(NewRequest()), keys_);
    ASSERT_TRUE(issued.ok()) << issued.status();
    leaves.push_back(issued->leaf_hash);
  }
  auto count = [&] {
    auto rows = RunSql(scratch_->url(),
                       "SELECT count(*)::text FROM certificate_log_nodes");
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? std::stoi((*rows)[0][0].value_or("-1")) : -1;
  };
  // 13 leaves complete 6 + 3 + 1 subtrees of 2, 4 and 8 leaves.
  EXPECT_EQ(count(), 10);
  auto check = [&] {
    cert::VectorLeafSource plain(&leaves);
    auto cp = store_->SignCheckpoint(keys_, kOrigin);
    ASSERT_TRUE(cp.ok()) << cp.status();
    EXPECT_EQ(cp->root_hash, *cert::RootHash(plain, kLeaves));
    for (int64_t i = 0; i < kLeaves; ++i) {
      auto proof = store_->InclusionProof(i, kLeaves);
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_EQ(*proof, *cert::InclusionProof(plain, i, kLeaves)) << i;
    }
    for (int64_t m = 1; m <= kLeaves; ++m) {
      auto proof = store_->ConsistencyProof(m, kLeaves);
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_EQ(*proof, *cert::ConsistencyProof(plain, m, kLeaves)) << m;
    }
  };
  check();
  // The nodes are append-only like the log...
  EXPECT_FALSE(
      RunSql(scratch_->url(), "DELETE FROM certificate_log_nodes").ok());
  EXPECT_FALSE(
      RunSql(scratch_->url(), "UPDATE certificate_log_nodes SET idx = idx + 1")
          .ok());
  // ... so an old log is simulated with the trigger off, as the owner.
  ASSERT_TRUE(RunSql(scratch_->url(),
                     "ALTER TABLE certificate_log_nodes DISABLE TRIGGER "
                     "certificate_log_nodes_append_only; "
                     "DELETE FROM certificate_log_nodes; "
                     "ALTER TABLE certificate_log_nodes ENABLE TRIGGER "
                     "certificate_log_nodes_append_only")
                  .ok());
  EXPECT_EQ(count(), 0);
  check();
  EXPECT_GT(count(), 0);  // computed and stored on the way
  // Appending to the old log stores the new leaf's subtrees from children
  // computed when missing.
  for (int i = kLeaves; i < 16; ++i) {
    auto issued = store_->Issue(testing::SampleRecord(NewRequest()), keys_);
    ASSERT_TRUE(issued.ok()) << issued.status();
    leaves.push_back(issued->leaf_hash);
  }
  cert::VectorLeafSource plain(&leaves);
  auto cp = store_->SignCheckpoint(keys_, kOrigin);
  ASSERT_TRUE(cp.ok()) << cp.status();
  EXPECT_EQ(cp->root_hash, *cert::RootHash(plain, 16));
  auto top = RunSql(scratch_->url(),
                    "SELECT encode(hash, 'hex') FROM certificate_log_nodes "
                    "WHERE level = 4 AND idx = 0");
  ASSERT_TRUE(top.ok());
  ASSERT_EQ(top->size(), 1u);
  EXPECT_EQ((*top)[0][0].value_or(""), ToHex(cp->root_hash));
}

TEST_F(CertificateStoreTest, ConcurrentIssuersAppendEachRequestOnceInOrder) {
  constexpr int kRequests = 24;
  std::vector<std::string> ids;
  ids.reserve(kRequests);
  for (int i = 0; i < kRequests; ++i) ids.push_back(NewRequest());
  // Every request is issued by two racing threads.
  std::atomic<int> next{0};
  std::atomic<int> replayed{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  threads.reserve(12);
  for (int t = 0; t < 12; ++t) {
    threads.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < 2 * kRequests;) {
        auto issued =
            store_->Issue(testing::SampleRecord(ids[i % kRequests]), keys_);
        if (!issued.ok()) {
          ++failed;
          ADD_FAILURE() << issued.status();
        } else if (issued->replayed) {
          ++replayed;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(replayed.load(), kRequests);
  ASSERT_EQ(*store_->TreeSize(), kRequests);

  std::set<int64_t> leaves;
  for (const std::string& id : ids) {
    auto c = store_->Get(id);
    ASSERT_TRUE(c.ok()) << c.status();
    leaves.insert(c->leaf_index);
    EXPECT_EQ(c->leaf_hash, cert::CertificateLeafHash(c->envelope));
  }
  EXPECT_EQ(leaves.size(), static_cast<size_t>(kRequests));
  EXPECT_EQ(*leaves.begin(), 0);
  EXPECT_EQ(*leaves.rbegin(), kRequests - 1);

  // Every certificate proves its inclusion under the signed checkpoint.
  auto cp = store_->SignCheckpoint(keys_, kOrigin);
  ASSERT_TRUE(cp.ok()) << cp.status();
  EXPECT_EQ(cp->tree_size, kRequests);
  const auto pub = PublicKeys();
  for (const std::string& id : ids) {
    auto c = store_->Get(id);
    auto proof = store_->InclusionProof(c->leaf_index, cp->tree_size);
    ASSERT_TRUE(proof.ok()) << proof.status();
    cert::Bundle b{c->envelope, cp->note, static_cast<uint64_t>(c->leaf_index),
                   static_cast<uint64_t>(cp->tree_size), *proof};
    auto verified = cert::VerifyBundle(b, pub);
    ASSERT_TRUE(verified.ok()) << verified.status();
    EXPECT_EQ(verified->record.request_id, id);
  }
}

TEST_F(CertificateStoreTest, IssueInTxnRollsBackWithTheCallersTransaction) {
  const std::string id = NewRequest();
  absl::Status st = db_->Transact([&](Txn& txn) {
    auto issued =
        PgCertificateStore::IssueInTxn(txn, testing::SampleRecord(id), keys_);
    EXPECT_TRUE(issued.ok()) << issued.status();
    return absl::AbortedError("the worker's publish failed");
  });
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(*store_->TreeSize(), 0);
  EXPECT_EQ(store_->Get(id).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->Issue(testing::SampleRecord(id), keys_).ok());
  EXPECT_EQ(store_->Get(id)->leaf_index, 0);
}

TEST_F(CertificateStoreTest, UnknownRequestAndInvalidRecordAreRefused) {
  EXPECT_EQ(
      store_
          ->Issue(testing::SampleRecord("00000000-0000-4000-8000-000000000000"),
                  keys_)
          .status()
          .code(),
      absl::StatusCode::kNotFound);
  cert::CompletionRecord bad = testing::SampleRecord(NewRequest());
  bad.subject_commitment.clear();
  EXPECT_EQ(store_->Issue(bad, keys_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Issue(testing::SampleRecord(NewRequest()), cert::KeyRing())
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*store_->TreeSize(), 0);
}

TEST_F(CertificateStoreTest, CheckpointsOfAGrowingLogAreAllConsistent) {
  std::vector<StoredCheckpoint> checkpoints;
  auto empty = store_->SignCheckpoint(keys_, kOrigin);
  ASSERT_TRUE(empty.ok()) << empty.status();
  checkpoints.push_back(*empty);
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i <= round; ++i) {
      ASSERT_TRUE(
          store_->Issue(testing::SampleRecord(NewRequest()), keys_).ok());
    }
    auto cp = store_->SignCheckpoint(keys_, kOrigin);
    ASSERT_TRUE(cp.ok()) << cp.status();
    // Asking again without growth returns the stored one, not a new one.
    EXPECT_EQ(store_->SignCheckpoint(keys_, kOrigin)->note, cp->note);
    checkpoints.push_back(*cp);
  }
  EXPECT_EQ(checkpoints.back().tree_size, 21);
  const auto pub = PublicKeys();
  for (const auto& a : checkpoints) {
    auto opened = cert::OpenCheckpoint(a.note, pub);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(opened->checkpoint.root_hash, a.root_hash);
    EXPECT_EQ(store_->CheckpointAt(a.tree_size)->note, a.note);
    for (const auto& b : checkpoints) {
      if (a.tree_size > b.tree_size) continue;
      auto proof = store_->ConsistencyProof(a.tree_size, b.tree_size);
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_TRUE(cert::VerifyConsistency(a.tree_size, b.tree_size, *proof,
                                          a.root_hash, b.root_hash)
                      .ok())
          << a.tree_size << "->" << b.tree_size;
    }
  }
  EXPECT_EQ(store_->ConsistencyProof(3, 99).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->InclusionProof(21, 21).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CertificateStoreTest, LogTablesAreAppendOnly) {
  ASSERT_TRUE(store_->Issue(testing::SampleRecord(NewRequest()), keys_).ok());
  ASSERT_TRUE(store_->SignCheckpoint(keys_, kOrigin).ok());
  for (const char* sql :
       {"UPDATE certificates SET key_id = 'x'", "DELETE FROM certificates",
        "UPDATE certificate_log SET leaf_hash = leaf_hash",
        "DELETE FROM certificate_log", "DELETE FROM certificate_checkpoints",
        "UPDATE certificate_log_head SET size = 0",
        // NOLINTNEXTLINE(bugprone-suspicious-missing-comma): one statement
        "INSERT INTO certificate_log (leaf_index, leaf_hash) VALUES (7, "
        "sha256('x'))"}) {
    auto refused = RunSql(scratch_->url(), sql);
    EXPECT_FALSE(refused.ok()) << sql;
    EXPECT_FALSE(absl::IsUnavailable(refused.status())) << sql;
  }
  EXPECT_EQ(*store_->TreeSize(), 1);
}

TEST_F(CertificateStoreTest, ListFiltersByModelAndPagesNewestFirst) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_->Issue(testing::SampleRecord(NewRequest()), keys_).ok());
  }
  const std::string model = testing::SampleRecord().models[0].model_id;
  std::vector<int64_t> seen;
  Page page{2, std::nullopt};
  do {
    auto p = store_->List({model, 0, 0}, page);
    ASSERT_TRUE(p.ok()) << p.status();
    for (const auto& c : p->rows) seen.push_back(c.leaf_index);
    page.after = p->next;
  } while (page.after);
  EXPECT_EQ(seen, (std::vector<int64_t>{4, 3, 2, 1, 0}));
  auto none = store_->List({"00000000-0000-4000-8000-000000000000", 0, 0},
                           {10, std::nullopt});
  EXPECT_TRUE(none->rows.empty());
}

TEST_F(CertificateStoreTest, RotatedKeysKeepOldCertificatesVerifiable) {
  const std::string first = NewRequest();
  ASSERT_TRUE(store_->Issue(testing::SampleRecord(first), keys_).ok());
  cert::PrivateKey newer = cert::PrivateKey::Generate();
  newer.set_info({kOrigin, 1000, 0});
  cert::KeyRing rotated({key_, newer});
  const std::string second = NewRequest();
  auto c2 = store_->Issue(testing::SampleRecord(second), rotated);
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(c2->key_id, newer.public_key().key_id());
  auto cp = store_->SignCheckpoint(rotated, kOrigin);
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->key_id, newer.public_key().key_id());
  const auto pub = rotated.PublicKeys();
  auto c1 = store_->Get(first);
  cert::Bundle b{c1->envelope, cp->note, 0, 2, *store_->InclusionProof(0, 2)};
  auto verified = cert::VerifyBundle(b, pub);
  EXPECT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->envelope_key_id, key_.public_key().key_id());
}

}  // namespace
}  // namespace lethe::storage

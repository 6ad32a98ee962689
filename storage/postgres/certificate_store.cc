#include <algorithm>
#include <limits>

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cert/checkpoint.h"
#include "cert/dsse.h"
#include "cert/merkle.h"
#include "storage/hash.h"
#include "storage/postgres/sql_util.h"
#include "storage/postgres/stores.h"
#include "storage/queries_sql.h"

namespace lethe::storage {
namespace {

using internal::Bytea;
using internal::ReadBytea;

// A row of queries/get_certificate.sql or list_certificates.sql.
IssuedCertificate ReadCertificate(const pqxx::row& r) {
  IssuedCertificate c;
  c.leaf_index = r[0].as<int64_t>();
  c.request_id = r[1].c_str();
  c.envelope = ReadBytea(r[2]);
  c.leaf_hash = ReadBytea(r[3]);
  c.key_id = r[4].c_str();
  c.model_ids = internal::ParseArray(r[5]);
  c.issued_us = r[6].as<int64_t>();
  c.client_key_id = r[7].c_str();
  return c;
}

std::optional<IssuedCertificate> FindCompletion(Txn& txn,
                                                const std::string& id) {
  auto res = txn.exec_params(sql::kGetCertificate, id);
  if (res.empty()) return std::nullopt;
  return ReadCertificate(res[0]);
}

// The log's leaves as a LeafHashSource, read in the caller's transaction.
// The log in one transaction, with its stored interior nodes (migration
// 8): a node not stored yet is computed from its leaves and stored.
class TxnLeafSource final : public cert::LeafHashSource {
 public:
  explicit TxnLeafSource(Txn& txn) : txn_(txn) {}

  bool StoresNodes() const override { return true; }

  absl::StatusOr<std::string> Subtree(int level,
                                      uint64_t index) const override {
    auto stored =
        txn_.exec_params(sql::kGetLogNode, level, static_cast<int64_t>(index));
    if (!stored.empty()) return ReadBytea(stored[0][0]);
    // Missing (a log older than migration 8): one read of its leaves, and
    // it and every subtree inside it are stored.
    const uint64_t width = uint64_t{1} << level;
    auto leaves = LeafHashes(index * width, (index + 1) * width);
    if (!leaves.ok()) return leaves.status();
    const auto nodes = cert::SubtreeNodes(level, index, *leaves);
    StoreNodes(nodes);
    return nodes.back().hash;
  }

  // Stores the subtrees that leaf `index`, just appended, completes, each
  // from its two children: O(log n) rows.
  absl::Status StoreCompletedBy(uint64_t index, const std::string& leaf) const {
    std::string right = leaf;
    for (int level = 1; ((index + 1) & ((uint64_t{1} << level) - 1)) == 0;
         ++level) {
      const uint64_t node = ((index + 1) >> level) - 1;
      auto left = Child(level - 1, 2 * node);
      if (!left.ok()) return left.status();
      right = cert::HashChildren(*left, right);
      txn_.exec_params(sql::kInsertLogNode, level, static_cast<int64_t>(node),
                       Bytea(right));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> LeafHashes(
      uint64_t begin, uint64_t end) const override {
    auto res = txn_.exec_params(sql::kCertificateLeafHashes,
                                static_cast<int64_t>(begin),
                                static_cast<int64_t>(end));
    if (res.size() != end - begin) {
      return absl::InternalError(
          absl::StrCat("certificate_log has ", res.size(), " leaves in [",
                       begin, ", ", end, "): the log has a gap"));
    }
    std::vector<std::string> out;
    out.reserve(res.size());
    for (const auto& row : res) out.push_back(ReadBytea(row[0]));
    return out;
  }

 private:
  void StoreNodes(const std::vector<cert::SubtreeNode>& nodes) const {
    constexpr size_t kBatch = 8192;
    for (size_t begin = 0; begin < nodes.size(); begin += kBatch) {
      std::string levels = "{", indexes = "{", hashes = "{";
      for (size_t i = begin; i < std::min(nodes.size(), begin + kBatch); ++i) {
        const char* sep = i == begin ? "" : ",";
        absl::StrAppend(&levels, sep, nodes[i].level);
        absl::StrAppend(&indexes, sep, nodes[i].index);
        absl::StrAppend(&hashes, sep, ToHex(nodes[i].hash));
      }
      txn_.exec_params(sql::kInsertLogNodes, levels + "}", indexes + "}",
                       hashes + "}");
    }
  }

  absl::StatusOr<std::string> Child(int level, uint64_t index) const {
    if (level > 0) return Subtree(level, index);
    auto leaf = LeafHashes(index, index + 1);
    if (!leaf.ok()) return leaf.status();
    return (*leaf)[0];
  }

  Txn& txn_;
};

int64_t CurrentSize(Txn& txn) {
  return txn.exec(sql::kCertificateLogSize)[0][0].as<int64_t>();
}

absl::Status CheckTreeSize(Txn& txn, int64_t tree_size) {
  const int64_t size = CurrentSize(txn);
  if (tree_size > size) {
    return absl::FailedPreconditionError(
        absl::StrCat("tree size ", tree_size, " is beyond the log's size ",
                     size, ": ask for a checkpoint first"));
  }
  return absl::OkStatus();
}

// The checkpoint that `query` (queries/latest_checkpoint.sql or
// get_checkpoint.sql) selects for tree size `size`.
std::optional<StoredCheckpoint> ReadCheckpoint(Txn& txn, const char* query,
                                               int64_t size) {
  auto res = txn.exec_params(query, size);
  if (res.empty()) return std::nullopt;
  StoredCheckpoint cp;
  cp.tree_size = res[0][0].as<int64_t>();
  cp.root_hash = ReadBytea(res[0][1]);
  cp.note = res[0][2].c_str();
  cp.key_id = res[0][3].c_str();
  cp.signed_us = res[0][4].as<int64_t>();
  return cp;
}

}  // namespace

absl::StatusOr<IssuedCertificate> PgCertificateStore::IssueInTxn(
    Txn& txn, const cert::CompletionRecord& record, const cert::KeyRing& keys) {
  auto statement = cert::MakeStatement(record);
  if (!statement.ok()) return statement.status();
  if (auto existing = FindCompletion(txn, record.request_id)) {
    existing->replayed = true;
    return *existing;
  }
  auto signer = keys.SignerAt(record.completed_us);
  if (!signer.ok()) return signer.status();
  if (txn.exec_params(sql::kErasureRequestExists, record.request_id).empty()) {
    return absl::NotFoundError(
        absl::StrCat("erasure request ", record.request_id, " not found"));
  }
  const int64_t index =
      txn.exec(sql::kLockCertificateLogHead)[0][0].as<int64_t>();
  // Another issuer of the same request may have committed while we waited.
  if (auto existing = FindCompletion(txn, record.request_id)) {
    existing->replayed = true;
    return *existing;
  }
  const std::string envelope =
      cert::SignEnvelope(cert::kInTotoPayloadType, *statement, **signer)
          .Serialize();
  const std::string leaf = cert::CertificateLeafHash(envelope);
  std::vector<std::string> model_ids;
  for (const auto& m : record.models) model_ids.push_back(m.model_id);
  txn.exec_params(sql::kInsertCertificateLeaf, index, Bytea(leaf));
  txn.exec_params(sql::kInsertCertificate, index, record.request_id,
                  Bytea(envelope), (*signer)->public_key().key_id(),
                  internal::UuidArray(model_ids));
  txn.exec_params(sql::kSetCertificateLogSize, index + 1);
  if (auto st = TxnLeafSource(txn).StoreCompletedBy(
          static_cast<uint64_t>(index), leaf);
      !st.ok()) {
    return st;
  }
  auto issued = FindCompletion(txn, record.request_id);
  if (!issued) return absl::InternalError("issued certificate not readable");
  return *issued;
}

absl::StatusOr<IssuedCertificate> PgCertificateStore::Issue(
    const cert::CompletionRecord& record, const cert::KeyRing& keys) {
  return db_->TransactValue<IssuedCertificate>(
      [&](Txn& txn) { return IssueInTxn(txn, record, keys); });
}

absl::StatusOr<CompletedRequest> PgCertificateStore::ReadCompletedInTxn(
    Txn& txn, const std::string& erasure_id) {
  auto req = txn.exec_params(sql::kGetCompletedRequest, erasure_id);
  if (req.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("erasure request ", erasure_id, " is not COMPLETED"));
  }
  CompletedRequest out;
  out.erasure_id = erasure_id;
  out.legal_ground = req[0][0].c_str();
  out.legal_reference = req[0][1].c_str();
  out.subject_commitment = ReadBytea(req[0][2]);
  out.submitted_us = req[0][3].as<int64_t>();
  out.completed_us = req[0][4].as<int64_t>();
  auto tasks = txn.exec_params(sql::kCompletedRequestTasks, erasure_id);
  for (const auto& t : tasks) {
    CompletedTask task;
    task.model_id = t[0].c_str();
    task.model_name = t[1].c_str();
    task.result_version = t[2].as<int64_t>();
    task.method = t[3].c_str();
    task.digest_after = ReadBytea(t[4]);
    task.parent_version = t[5].is_null() ? 0 : t[5].as<int64_t>();
    if (!t[6].is_null()) task.digest_before = ReadBytea(t[6]);
    task.records_removed = t[7].as<int64_t>();
    task.report_json = t[8].c_str();
    task.policy_json = t[9].c_str();
    out.tasks.push_back(std::move(task));
  }
  return out;
}

absl::StatusOr<int> PgCertificateStore::CertifyMissing(
    int limit, const CertifyHook& hook) {
  auto ids = db_->TransactValue<std::vector<std::string>>(
      [&](Txn& txn) -> absl::StatusOr<std::vector<std::string>> {
        auto res = txn.exec_params(sql::kUncertifiedRequests, limit);
        std::vector<std::string> out;
        for (const auto& r : res) out.emplace_back(r[0].c_str());
        return out;
      });
  if (!ids.ok()) return ids.status();
  for (const auto& id : *ids) {
    absl::Status st = db_->Transact([&](Txn& txn) {
      PgCertificateScope scope(txn);
      return hook(scope, {id});
    });
    if (!st.ok()) return st;
  }
  return static_cast<int>(ids->size());
}

absl::StatusOr<CompletedRequest> PgCertificateScope::ReadCompleted(
    const std::string& erasure_id) {
  return PgCertificateStore::ReadCompletedInTxn(txn_, erasure_id);
}

absl::StatusOr<IssuedCertificate> PgCertificateScope::Issue(
    const cert::CompletionRecord& record, const cert::KeyRing& keys) {
  return PgCertificateStore::IssueInTxn(txn_, record, keys);
}

absl::Status PgCertificateScope::Isolated(
    const std::function<absl::Status()>& fn) {
  txn_.exec("SAVEPOINT isolated");
  absl::Status st;
  try {
    st = fn();
  } catch (const std::exception&) {
    st = StatusFromCurrentException();
  }
  txn_.exec(st.ok() ? "RELEASE SAVEPOINT isolated"
                    : "ROLLBACK TO SAVEPOINT isolated");
  return st;
}

absl::StatusOr<IssuedCertificate> PgCertificateStore::Get(
    const std::string& request_id) {
  return db_->TransactValue<IssuedCertificate>(
      [&](Txn& txn) -> absl::StatusOr<IssuedCertificate> {
        auto found = FindCompletion(txn, request_id);
        if (!found) {
          return absl::NotFoundError(
              absl::StrCat("no certificate for erasure request ", request_id,
                           " (it is issued when the request completes)"));
        }
        return *found;
      });
}

absl::StatusOr<CertificatePage> PgCertificateStore::List(
    const CertificateFilter& filter, const Page& page) {
  return db_->TransactValue<
      CertificatePage>([&](Txn& txn) -> absl::StatusOr<CertificatePage> {
    const bool has_cursor = page.after.has_value();
    auto res = txn.exec_params(
        sql::kListCertificates, filter.model_id, filter.issued_after_us,
        filter.issued_before_us, has_cursor,
        has_cursor ? std::stoll(page.after->id) : int64_t{0}, page.size + 1);
    CertificatePage out;
    for (const auto& row : res) {
      if (static_cast<int>(out.rows.size()) == page.size) {
        const auto& last = out.rows.back();
        out.next = PageCursor{last.issued_us, std::to_string(last.leaf_index)};
        break;
      }
      out.rows.push_back(ReadCertificate(row));
    }
    return out;
  });
}

absl::StatusOr<int64_t> PgCertificateStore::TreeSize() {
  return db_->TransactValue<int64_t>(
      [](Txn& txn) -> absl::StatusOr<int64_t> { return CurrentSize(txn); });
}

absl::StatusOr<std::vector<std::string>> PgCertificateStore::InclusionProof(
    int64_t leaf, int64_t tree_size) {
  if (leaf < 0 || leaf >= tree_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "leaf_index ", leaf, " is not in a tree of ", tree_size, " leaves"));
  }
  return db_->TransactValue<std::vector<std::string>>(
      [&](Txn& txn) -> absl::StatusOr<std::vector<std::string>> {
        if (auto st = CheckTreeSize(txn, tree_size); !st.ok()) return st;
        return cert::InclusionProof(TxnLeafSource(txn),
                                    static_cast<uint64_t>(leaf),
                                    static_cast<uint64_t>(tree_size));
      });
}

absl::StatusOr<std::vector<std::string>> PgCertificateStore::ConsistencyProof(
    int64_t first, int64_t second) {
  if (first < 0 || first > second) {
    return absl::InvalidArgumentError(absl::StrCat(
        "first_size ", first, " must be between 0 and second_size ", second));
  }
  return db_->TransactValue<std::vector<std::string>>(
      [&](Txn& txn) -> absl::StatusOr<std::vector<std::string>> {
        if (auto st = CheckTreeSize(txn, second); !st.ok()) return st;
        return cert::ConsistencyProof(TxnLeafSource(txn),
                                      static_cast<uint64_t>(first),
                                      static_cast<uint64_t>(second));
      });
}

absl::StatusOr<StoredCheckpoint> PgCertificateStore::SignCheckpoint(
    const cert::KeyRing& keys, const std::string& origin) {
  return db_->TransactValue<StoredCheckpoint>(
      [&](Txn& txn) -> absl::StatusOr<StoredCheckpoint> {
        const int64_t size = CurrentSize(txn);
        auto last = ReadCheckpoint(txn, sql::kLatestCheckpoint, size);
        if (last && last->tree_size == size) return *last;
        auto signer = keys.SignerAt(absl::ToUnixMicros(absl::Now()));
        if (!signer.ok()) return signer.status();
        TxnLeafSource source(txn);
        auto root = cert::RootHash(source, static_cast<uint64_t>(size));
        if (!root.ok()) return root.status();
        if (last) {
          auto proof = cert::ConsistencyProof(
              source, static_cast<uint64_t>(last->tree_size),
              static_cast<uint64_t>(size));
          if (!proof.ok()) return proof.status();
          if (auto st = cert::VerifyConsistency(
                  static_cast<uint64_t>(last->tree_size),
                  static_cast<uint64_t>(size), *proof, last->root_hash, *root);
              !st.ok()) {
            return absl::InternalError(absl::StrCat(
                "refusing to sign: the stored log is not consistent with "
                "checkpoint ",
                last->tree_size, ": ", st.message()));
          }
        }
        auto note = cert::SignCheckpoint(
            {origin, static_cast<uint64_t>(size), *root}, **signer);
        if (!note.ok()) return note.status();
        txn.exec_params(sql::kInsertCheckpoint, size, Bytea(*root), *note,
                        (*signer)->public_key().key_id());
        // A replica that signed the same size first wins; ours is dropped.
        auto stored = ReadCheckpoint(txn, sql::kGetCheckpoint, size);
        if (!stored) return absl::InternalError("checkpoint not stored");
        return *stored;
      });
}

absl::StatusOr<StoredCheckpoint> PgCertificateStore::NewestCheckpoint() {
  return db_->TransactValue<StoredCheckpoint>(
      [&](Txn& txn) -> absl::StatusOr<StoredCheckpoint> {
        auto cp = ReadCheckpoint(txn, sql::kLatestCheckpoint,
                                 std::numeric_limits<int64_t>::max());
        if (!cp) {
          return absl::NotFoundError(
              "no checkpoint has been signed yet: a worker with signing keys "
              "signs one after it issues a certificate");
        }
        return *cp;
      });
}

absl::StatusOr<StoredCheckpoint> PgCertificateStore::CheckpointAt(
    int64_t tree_size) {
  return db_->TransactValue<StoredCheckpoint>(
      [&](Txn& txn) -> absl::StatusOr<StoredCheckpoint> {
        auto cp = ReadCheckpoint(txn, sql::kGetCheckpoint, tree_size);
        if (!cp) {
          return absl::NotFoundError(absl::StrCat(
              "no checkpoint was signed at tree size ", tree_size));
        }
        return *cp;
      });
}

}  // namespace lethe::storage

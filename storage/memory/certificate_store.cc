// CertificateStore in memory: the same DSSE envelopes, RFC 6962 leaves and
// signed checkpoints as storage/postgres/certificate_store.cc, over a
// vector of leaf hashes.
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cert/checkpoint.h"
#include "cert/dsse.h"
#include "cert/merkle.h"
#include "storage/memory/core.h"

namespace lethe::storage::memory {
namespace {

absl::StatusOr<IssuedCertificate> IssueIn(State& s,
                                          const cert::CompletionRecord& record,
                                          const cert::KeyRing& keys,
                                          int64_t now) {
  auto statement = cert::MakeStatement(record);
  if (!statement.ok()) return statement.status();
  if (auto it = s.certificate_of.find(record.request_id);
      it != s.certificate_of.end()) {
    IssuedCertificate existing = s.certificates[it->second];
    existing.replayed = true;
    return existing;
  }
  auto signer = keys.SignerAt(record.completed_us);
  if (!signer.ok()) return signer.status();
  auto request = s.requests.find(record.request_id);
  if (request == s.requests.end()) {
    return absl::NotFoundError(
        absl::StrCat("erasure request ", record.request_id, " not found"));
  }
  IssuedCertificate c;
  c.leaf_index = static_cast<int64_t>(s.leaves.size());
  c.request_id = record.request_id;
  c.envelope =
      cert::SignEnvelope(cert::kInTotoPayloadType, *statement, **signer)
          .Serialize();
  c.leaf_hash = cert::CertificateLeafHash(c.envelope);
  c.key_id = (*signer)->public_key().key_id();
  for (const auto& m : record.models) c.model_ids.push_back(m.model_id);
  c.issued_us = now;
  c.client_key_id = request->second.row.client_key_id;
  s.leaves.push_back(c.leaf_hash);
  s.certificates.push_back(c);
  s.certificate_of[c.request_id] = c.leaf_index;
  return c;
}

absl::StatusOr<CompletedRequest> ReadCompletedIn(const State& s,
                                                 const std::string& id) {
  auto it = s.requests.find(id);
  if (it == s.requests.end() || it->second.row.state != "COMPLETED") {
    return absl::FailedPreconditionError(
        absl::StrCat("erasure request ", id, " is not COMPLETED"));
  }
  const ErasureRow& r = it->second.row;
  CompletedRequest out{id,
                       r.legal_ground,
                       r.legal_reference,
                       r.subject_commitment,
                       r.created_us,
                       r.completed_us,
                       {}};
  for (const auto& [task_id, t] : s.tasks) {
    if (t.erasure_id != id || t.state != "DONE") continue;
    auto v = s.versions.find({t.model_id, t.result_version});
    if (v == s.versions.end()) continue;  // an inner join in SQL
    const Model& m = s.models.at(t.model_id);
    CompletedTask task;
    task.model_id = t.model_id;
    task.model_name = m.row.name;
    task.result_version = t.result_version;
    task.method = t.method.value_or(v->second.row.produced_by);
    task.digest_after = v->second.row.artifact_sha256;
    task.parent_version = v->second.row.parent_version;
    auto parent = s.versions.find({t.model_id, task.parent_version});
    if (parent != s.versions.end()) {
      task.digest_before = parent->second.row.artifact_sha256;
    }
    task.records_removed = t.records_removed;
    task.report_json = v->second.row.report_json;
    task.policy_json = m.row.policy_json;
    out.tasks.push_back(std::move(task));
  }
  std::sort(out.tasks.begin(), out.tasks.end(),
            [](const CompletedTask& a, const CompletedTask& b) {
              return a.model_id < b.model_id;
            });
  return out;
}

class MemoryScope final : public CertificateScope {
 public:
  MemoryScope(State& s, int64_t now) : s_(s), now_(now) {}

  absl::StatusOr<CompletedRequest> ReadCompleted(
      const std::string& erasure_id) override {
    return ReadCompletedIn(s_, erasure_id);
  }
  absl::StatusOr<IssuedCertificate> Issue(const cert::CompletionRecord& record,
                                          const cert::KeyRing& keys) override {
    return IssueIn(s_, record, keys, now_);
  }
  absl::Status Isolated(const std::function<absl::Status()>& fn) override {
    State saved = s_;
    absl::Status st = fn();
    if (!st.ok()) s_ = std::move(saved);
    return st;
  }

 private:
  State& s_;
  const int64_t now_;
};

absl::Status CheckTreeSize(const State& s, int64_t tree_size) {
  const int64_t size = static_cast<int64_t>(s.leaves.size());
  if (tree_size > size) {
    return absl::FailedPreconditionError(
        absl::StrCat("tree size ", tree_size, " is beyond the log's size ",
                     size, ": ask for a checkpoint first"));
  }
  return absl::OkStatus();
}

bool Listed(const IssuedCertificate& c, const CertificateFilter& f,
            std::optional<int64_t> before_leaf) {
  if (!f.model_id.empty() && std::find(c.model_ids.begin(), c.model_ids.end(),
                                       f.model_id) == c.model_ids.end()) {
    return false;
  }
  if (f.issued_after_us != 0 && c.issued_us < f.issued_after_us) return false;
  if (f.issued_before_us != 0 && c.issued_us >= f.issued_before_us) {
    return false;
  }
  return !before_leaf || c.leaf_index < *before_leaf;
}

// Signs a checkpoint of the whole log after checking that the log extends
// the last one (`last`, if any).
absl::StatusOr<StoredCheckpoint> SignLatest(
    State& s, const std::optional<StoredCheckpoint>& last,
    const cert::KeyRing& keys, const std::string& origin, int64_t now) {
  const auto size = static_cast<uint64_t>(s.leaves.size());
  auto signer = keys.SignerAt(now);
  if (!signer.ok()) return signer.status();
  cert::VectorLeafSource source(&s.leaves);
  auto root = cert::RootHash(source, size);
  if (!root.ok()) return root.status();
  if (last) {
    const auto first = static_cast<uint64_t>(last->tree_size);
    auto proof = cert::ConsistencyProof(source, first, size);
    if (!proof.ok()) return proof.status();
    if (auto st = cert::VerifyConsistency(first, size, *proof, last->root_hash,
                                          *root);
        !st.ok()) {
      return absl::InternalError(absl::StrCat(
          "refusing to sign: the stored log is not consistent with "
          "checkpoint ",
          last->tree_size, ": ", st.message()));
    }
  }
  auto note = cert::SignCheckpoint({origin, size, *root}, **signer);
  if (!note.ok()) return note.status();
  StoredCheckpoint cp{static_cast<int64_t>(size), *root, *note,
                      (*signer)->public_key().key_id(), now};
  s.checkpoints[cp.tree_size] = cp;
  return cp;
}

class MemoryCertificateStore final : public CertificateStore {
 public:
  explicit MemoryCertificateStore(Core* core) : core_(core) {}

  absl::StatusOr<IssuedCertificate> Issue(const cert::CompletionRecord& record,
                                          const cert::KeyRing& keys) override {
    const int64_t now = core_->Now();
    return core_->Run([&](State& s) { return IssueIn(s, record, keys, now); });
  }

  absl::StatusOr<int> CertifyMissing(int limit,
                                     const CertifyHook& hook) override;

  absl::StatusOr<IssuedCertificate> Get(const std::string& id) override {
    return core_->Run([&](State& s) -> absl::StatusOr<IssuedCertificate> {
      auto it = s.certificate_of.find(id);
      if (it == s.certificate_of.end()) {
        return absl::NotFoundError(
            absl::StrCat("no certificate for erasure request ", id,
                         " (it is issued when the request completes)"));
      }
      return s.certificates[it->second];
    });
  }

  absl::StatusOr<CertificatePage> List(const CertificateFilter& filter,
                                       const Page& page) override;

  absl::StatusOr<int64_t> TreeSize() override {
    return core_->Run([](State& s) -> absl::StatusOr<int64_t> {
      return static_cast<int64_t>(s.leaves.size());
    });
  }

  absl::StatusOr<std::vector<std::string>> InclusionProof(
      int64_t leaf, int64_t tree_size) override {
    if (leaf < 0 || leaf >= tree_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "leaf_index ", leaf, " is not in a tree of ", tree_size, " leaves"));
    }
    return core_->Run(
        [&](State& s) -> absl::StatusOr<std::vector<std::string>> {
          if (auto st = CheckTreeSize(s, tree_size); !st.ok()) return st;
          return cert::InclusionProof(cert::VectorLeafSource(&s.leaves),
                                      static_cast<uint64_t>(leaf),
                                      static_cast<uint64_t>(tree_size));
        });
  }

  absl::StatusOr<std::vector<std::string>> ConsistencyProof(
      int64_t first, int64_t second) override {
    if (first < 0 || first > second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "first_size ", first, " must be between 0 and second_size ", second));
    }
    return core_->Run(
        [&](State& s) -> absl::StatusOr<std::vector<std::string>> {
          if (auto st = CheckTreeSize(s, second); !st.ok()) return st;
          return cert::ConsistencyProof(cert::VectorLeafSource(&s.leaves),
                                        static_cast<uint64_t>(first),
                                        static_cast<uint64_t>(second));
        });
  }

  absl::StatusOr<StoredCheckpoint> SignCheckpoint(
      const cert::KeyRing& keys, const std::string& origin) override {
    const int64_t now = core_->Now();
    return core_->Run([&](State& s) -> absl::StatusOr<StoredCheckpoint> {
      std::optional<StoredCheckpoint> last;
      if (!s.checkpoints.empty()) last = s.checkpoints.rbegin()->second;
      if (last && last->tree_size == static_cast<int64_t>(s.leaves.size())) {
        return *last;
      }
      return SignLatest(s, last, keys, origin, now);
    });
  }

  absl::StatusOr<StoredCheckpoint> NewestCheckpoint() override {
    return core_->Run([&](State& s) -> absl::StatusOr<StoredCheckpoint> {
      if (s.checkpoints.empty()) {
        return absl::NotFoundError("no checkpoint has been signed yet");
      }
      return s.checkpoints.rbegin()->second;
    });
  }

  absl::StatusOr<StoredCheckpoint> CheckpointAt(int64_t tree_size) override {
    return core_->Run([&](State& s) -> absl::StatusOr<StoredCheckpoint> {
      auto it = s.checkpoints.find(tree_size);
      if (it == s.checkpoints.end()) {
        return absl::NotFoundError(
            absl::StrCat("no checkpoint was signed at tree size ", tree_size));
      }
      return it->second;
    });
  }

 private:
  Core* core_;
};

absl::StatusOr<int> MemoryCertificateStore::CertifyMissing(
    int limit, const CertifyHook& hook) {
  auto ids =
      core_->Run([&](State& s) -> absl::StatusOr<std::vector<std::string>> {
        std::vector<std::pair<int64_t, std::string>> due;  // completed_us, id
        for (const auto& [id, r] : s.requests) {
          if (r.row.state != "COMPLETED" || s.certificate_of.count(id))
            continue;
          for (const auto& [task_id, t] : s.tasks) {
            if (t.erasure_id == id && t.state == "DONE") {
              due.emplace_back(r.row.completed_us, id);
              break;
            }
          }
        }
        std::sort(due.begin(), due.end());
        std::vector<std::string> out;
        for (size_t i = 0; i < due.size() && static_cast<int>(i) < limit; ++i) {
          out.push_back(due[i].second);
        }
        return out;
      });
  if (!ids.ok()) return ids.status();
  for (const auto& id : *ids) {
    const int64_t now = core_->Now();
    absl::Status st = core_->RunAtomic([&](State& s) {
      MemoryScope scope(s, now);
      return hook(scope, {id});
    });
    if (!st.ok()) return st;
  }
  return static_cast<int>(ids->size());
}

absl::StatusOr<CertificatePage> MemoryCertificateStore::List(
    const CertificateFilter& filter, const Page& page) {
  std::optional<int64_t> before_leaf;
  if (page.after) {
    int64_t leaf = 0;
    if (!absl::SimpleAtoi(page.after->id, &leaf)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "page cursor '", page.after->id, "' is not a certificate's"));
    }
    before_leaf = leaf;
  }
  return core_->Run([&](State& s) -> absl::StatusOr<CertificatePage> {
    CertificatePage out;
    for (size_t k = s.certificates.size(); k-- > 0;) {  // newest first
      const IssuedCertificate& certificate = s.certificates[k];
      if (!Listed(certificate, filter, before_leaf)) continue;
      if (static_cast<int>(out.rows.size()) == page.size) {
        const auto& last = out.rows.back();
        out.next = PageCursor{last.issued_us, std::to_string(last.leaf_index)};
        break;
      }
      out.rows.push_back(certificate);
    }
    return out;
  });
}

}  // namespace

std::unique_ptr<CertificateScope> NewScope(State& s, int64_t now) {
  return std::make_unique<MemoryScope>(s, now);
}

std::unique_ptr<CertificateStore> NewCertificateStore(Core* core) {
  return std::make_unique<MemoryCertificateStore>(core);
}

}  // namespace lethe::storage::memory

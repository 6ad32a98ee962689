// CertificateStore: completion certificates and their transparency log,
// stored so that any server replica can serve them (in PostgreSQL:
// migration 0003).
//
// Issuing appends one leaf, SHA-256(0x00 || SHA-256(envelope)), at the end
// of the log under a row lock on certificate_log_head: concurrent issuers
// append strictly one after the other, with no gaps and no duplicates, and
// the lock is held until the issuing transaction ends. Triggers make the
// log, the certificates and the checkpoints append-only.
//
// Checkpoints are signed by whoever holds the signing keys (the workers,
// after issuing; never the API server) through SignCheckpoint when the tree
// grew since the last one, at most one per tree size; since leaves never
// change, every stored checkpoint is consistent with every other, and the
// store checks that consistency proof before it signs. Readers get stored
// checkpoints only (NewestCheckpoint, CheckpointAt).
//
// Proofs are computed from the stored leaf hashes of the tree in question;
// PostgreSQL's store also keeps the hash of every complete aligned subtree
// (migration 8), so a root or proof costs O(log n) reads and hashes, where
// the in-memory store reads every leaf.
//
// Thread-safe. Storage errors: UNAVAILABLE while the store cannot be
// reached, INTERNAL otherwise.
#ifndef LETHE_STORAGE_CERTIFICATE_STORE_H_
#define LETHE_STORAGE_CERTIFICATE_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cert/keys.h"
#include "cert/statement.h"
#include "storage/types.h"

namespace lethe::storage {

struct IssuedCertificate {
  int64_t leaf_index = 0;
  std::string request_id;
  std::string envelope;   // the serialized DSSE envelope (cert/dsse.h)
  std::string leaf_hash;  // 32 bytes
  std::string key_id;     // the envelope's signing key (cert/keys.h)
  std::vector<std::string> model_ids;
  int64_t issued_us = 0;
  std::string client_key_id;  // the API key that submitted the request
  bool replayed = false;      // Issue found it already issued
};

struct CertificateFilter {
  std::string model_id;          // "" = any
  int64_t issued_after_us = 0;   // 0 = unbounded
  int64_t issued_before_us = 0;  // 0 = unbounded
};

struct CertificatePage {
  std::vector<IssuedCertificate> rows;
  std::optional<PageCursor> next;
};

struct StoredCheckpoint {
  int64_t tree_size = 0;
  std::string root_hash;  // 32 bytes
  std::string note;       // C2SP signed note (cert/checkpoint.h)
  std::string key_id;
  int64_t signed_us = 0;
};

// The facts of a COMPLETED request that its certificate states, as the
// transaction issuing it reads them: one entry per DONE task.
struct CompletedTask {
  std::string model_id;
  std::string model_name;
  int64_t result_version = 0;
  std::string method;        // the task's, else the version's produced_by
  std::string digest_after;  // raw SHA-256 of the result version
  int64_t parent_version = 0;
  std::string digest_before;  // raw SHA-256 of the parent, or empty
  int64_t records_removed = 0;
  std::string report_json;  // the result version's engine report, or ""
  std::string policy_json;  // the model's policy
};

struct CompletedRequest {
  std::string erasure_id;
  std::string legal_ground;
  std::string legal_reference;
  std::string subject_commitment;  // 32 bytes
  int64_t submitted_us = 0;
  int64_t completed_us = 0;
  std::vector<CompletedTask> tasks;  // in model id order
};

// What code running inside a storage transaction (a publication, or the
// sweep of missing certificates) may do to certify the requests that the
// transaction completes.
class CertificateScope {
 public:
  virtual ~CertificateScope() = default;
  // FAILED_PRECONDITION unless the request is COMPLETED (as this
  // transaction sees it).
  virtual absl::StatusOr<CompletedRequest> ReadCompleted(
      const std::string& erasure_id) = 0;
  // CertificateStore::Issue's contract, inside this transaction.
  virtual absl::StatusOr<IssuedCertificate> Issue(
      const cert::CompletionRecord& record, const cert::KeyRing& keys) = 0;
  // Runs `fn`; if it fails, what it wrote is undone alone (the rest of the
  // transaction stands) and its error is returned.
  virtual absl::Status Isolated(const std::function<absl::Status()>& fn) = 0;
};

// Called with the requests a transaction completes (or, in the sweep, one
// request completed without a certificate); an error aborts the
// transaction.
using CertifyHook = std::function<absl::Status(
    CertificateScope& scope, const std::vector<std::string>& erasure_ids)>;

class CertificateStore {
 public:
  virtual ~CertificateStore() = default;

  // Issues the completion certificate of `record.request_id`, signed by the
  // key of `keys` valid at record.completed_us, appending it to the log.
  // Idempotent: if the request already has one, returns it (replayed =
  // true) and writes nothing. INVALID_ARGUMENT for an invalid record
  // (cert::Validate); FAILED_PRECONDITION when no key is valid then;
  // NOT_FOUND when the request does not exist.
  virtual absl::StatusOr<IssuedCertificate> Issue(
      const cert::CompletionRecord& record, const cert::KeyRing& keys) = 0;

  // Requests COMPLETED without a certificate although a task of theirs is
  // DONE (completed while no worker had signing keys, say), oldest first,
  // at most `limit`: `hook` runs for each, with that one id, in a
  // transaction of its own. Returns how many requests it visited. A request
  // whose every task was SKIPPED has nothing to certify and is not visited.
  virtual absl::StatusOr<int> CertifyMissing(int limit,
                                             const CertifyHook& hook) = 0;

  // The completion certificate of a request; NOT_FOUND if none.
  virtual absl::StatusOr<IssuedCertificate> Get(
      const std::string& request_id) = 0;
  // Newest first; a page cursor is (issued_us, leaf index in decimal).
  virtual absl::StatusOr<CertificatePage> List(const CertificateFilter& filter,
                                               const Page& page) = 0;

  virtual absl::StatusOr<int64_t> TreeSize() = 0;
  // PATH(leaf, tree of `tree_size`). INVALID_ARGUMENT unless leaf <
  // tree_size; FAILED_PRECONDITION if tree_size exceeds the log's size.
  virtual absl::StatusOr<std::vector<std::string>> InclusionProof(
      int64_t leaf, int64_t tree_size) = 0;
  // PROOF(first, tree of `second`), errors as above.
  virtual absl::StatusOr<std::vector<std::string>> ConsistencyProof(
      int64_t first, int64_t second) = 0;

  // The checkpoint of the whole log: the stored one if the tree has not
  // grown since, else a new one signed by `keys` (checkpoint key name =
  // the key's name) with `origin`, stored and returned. FAILED_PRECONDITION
  // when one must be signed and no key is valid; INTERNAL if the stored
  // leaves are not consistent with the last checkpoint (the log was
  // tampered with: nothing is signed).
  virtual absl::StatusOr<StoredCheckpoint> SignCheckpoint(
      const cert::KeyRing& keys, const std::string& origin) = 0;
  // The stored checkpoint of the largest tree size; NOT_FOUND if none was
  // signed yet. Signs nothing: the log may have grown since.
  virtual absl::StatusOr<StoredCheckpoint> NewestCheckpoint() = 0;
  // A stored checkpoint by tree size; NOT_FOUND if none was signed at it.
  virtual absl::StatusOr<StoredCheckpoint> CheckpointAt(int64_t tree_size) = 0;
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_CERTIFICATE_STORE_H_

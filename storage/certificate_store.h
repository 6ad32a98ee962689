// CertificateStore: completion certificates and their transparency log in
// PostgreSQL (migration 0003), so that any server replica can serve them.
//
// Issuing appends one leaf, SHA-256(0x00 || SHA-256(envelope)), at the end
// of the log under a row lock on certificate_log_head: concurrent issuers
// append strictly one after the other, with no gaps and no duplicates, and
// the lock is held until the issuing transaction ends. Triggers make the
// log, the certificates and the checkpoints append-only.
//
// Checkpoints are signed on demand (LatestCheckpoint) when the tree grew
// since the last one, at most one per tree size; since leaves never change,
// every stored checkpoint is consistent with every other, and the store
// checks that consistency proof before it signs.
//
// Proofs are computed from the stored leaf hashes of the tree in question
// (O(tree size) reads and hashes per proof).
//
// Thread-safe; errors as Database::Transact describes.
#ifndef LETHE_STORAGE_CERTIFICATE_STORE_H_
#define LETHE_STORAGE_CERTIFICATE_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cert/keys.h"
#include "cert/statement.h"
#include "storage/database.h"
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
  bool replayed = false;      // IssueInTxn found it already issued
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

class CertificateStore {
 public:
  explicit CertificateStore(Database* db) : db_(db) {}

  // Issues the completion certificate of `record.request_id` inside the
  // caller's transaction (the worker's publish transaction), signed by the
  // key of `keys` valid at record.completed_us. Idempotent: if the request
  // already has one, returns it (replayed = true) and writes nothing.
  // INVALID_ARGUMENT for an invalid record (cert::Validate);
  // FAILED_PRECONDITION when no key is valid then; NOT_FOUND when the
  // request does not exist. Database errors propagate as exceptions, like
  // the caller's other statements, for Database::Transact to map.
  static absl::StatusOr<IssuedCertificate> IssueInTxn(
      Txn& txn, const cert::CompletionRecord& record,
      const cert::KeyRing& keys);

  // IssueInTxn in a transaction of its own.
  absl::StatusOr<IssuedCertificate> Issue(const cert::CompletionRecord& record,
                                          const cert::KeyRing& keys);

  // The completion certificate of a request; NOT_FOUND if none.
  absl::StatusOr<IssuedCertificate> Get(const std::string& request_id);
  // Newest first.
  absl::StatusOr<CertificatePage> List(const CertificateFilter& filter,
                                       const Page& page);

  absl::StatusOr<int64_t> TreeSize();
  // PATH(leaf, tree of `tree_size`). INVALID_ARGUMENT unless leaf <
  // tree_size; FAILED_PRECONDITION if tree_size exceeds the log's size.
  absl::StatusOr<std::vector<std::string>> InclusionProof(int64_t leaf,
                                                          int64_t tree_size);
  // PROOF(first, tree of `second`), errors as above.
  absl::StatusOr<std::vector<std::string>> ConsistencyProof(int64_t first,
                                                            int64_t second);

  // The checkpoint of the whole log: the stored one if the tree has not
  // grown since, else a new one signed by `keys` (checkpoint key name =
  // the key's name) with `origin`, stored and returned. FAILED_PRECONDITION
  // when one must be signed and no key is valid; INTERNAL if the stored
  // leaves are not consistent with the last checkpoint (the log was
  // tampered with: nothing is signed).
  absl::StatusOr<StoredCheckpoint> LatestCheckpoint(const cert::KeyRing& keys,
                                                    const std::string& origin);
  // A stored checkpoint by tree size; NOT_FOUND if none was signed at it.
  absl::StatusOr<StoredCheckpoint> CheckpointAt(int64_t tree_size);

 private:
  Database* db_;  // not owned
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_CERTIFICATE_STORE_H_

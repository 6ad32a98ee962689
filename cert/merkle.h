// The transparency log's Merkle tree, as RFC 6962 §2.1 / RFC 9162 §2.1
// define it over SHA-256:
//
//   MTH({})      = SHA-256()
//   leaf hash    = SHA-256(0x00 || d)
//   MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])),
//                  k the largest power of two smaller than n
//
// A certificate's leaf is d = SHA-256(envelope bytes), so its leaf hash is
// SHA-256(0x00 || SHA-256(envelope)) (CertificateLeafHash).
//
// Proof generation reads leaf hashes from a LeafHashSource (in memory, or
// PostgreSQL through storage::CertificateStore, which also stores the
// interior nodes of complete subtrees so that a proof costs O(log n));
// verification needs only the proof, as the RFC 9162 algorithms
// (§2.1.3.2, §2.1.4.2) describe.
// All hashes are raw 32-byte strings.
#ifndef LETHE_CERT_MERKLE_H_
#define LETHE_CERT_MERKLE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lethe::cert {

std::string HashLeaf(std::string_view data);
std::string HashChildren(std::string_view left, std::string_view right);
std::string CertificateLeafHash(std::string_view envelope);

// Where proofs come from: the log's leaf hashes by index.
class LeafHashSource {
 public:
  virtual ~LeafHashSource() = default;
  // Leaf hashes [begin, end), in order. Errors pass through to the caller
  // of the proof function (e.g. UNAVAILABLE from a database).
  virtual absl::StatusOr<std::vector<std::string>> LeafHashes(
      uint64_t begin, uint64_t end) const = 0;
  // True when Subtree answers from stored interior nodes: roots and proofs
  // then read O(log n) nodes and leaves instead of every leaf.
  virtual bool StoresNodes() const { return false; }
  // MTH of the complete subtree of 2^level leaves (level >= 1) that starts
  // at leaf index * 2^level. The default computes it from its leaves.
  virtual absl::StatusOr<std::string> Subtree(int level, uint64_t index) const;
};

// A LeafHashSource over a vector it does not own. OUT_OF_RANGE past its end.
class VectorLeafSource final : public LeafHashSource {
 public:
  explicit VectorLeafSource(const std::vector<std::string>* leaves)
      : leaves_(leaves) {}
  absl::StatusOr<std::vector<std::string>> LeafHashes(
      uint64_t begin, uint64_t end) const override;

 private:
  const std::vector<std::string>* leaves_;
};

// A complete subtree's hash: MTH of leaves [index * 2^level,
// (index + 1) * 2^level), level >= 1.
struct SubtreeNode {
  int level = 0;
  uint64_t index = 0;
  std::string hash;
};

// Every complete subtree inside the subtree (level, index) whose 2^level
// leaf hashes are `leaves`, bottom-up: the last one is (level, index). For
// a source that stores nodes and finds one missing: one read of its leaves
// yields all of its descendants too.
std::vector<SubtreeNode> SubtreeNodes(int level, uint64_t index,
                                      const std::vector<std::string>& leaves);

// MTH of the first `size` leaves.
absl::StatusOr<std::string> RootHash(const LeafHashSource& source,
                                     uint64_t size);
// PATH(index, D[size]). INVALID_ARGUMENT unless index < size.
absl::StatusOr<std::vector<std::string>> InclusionProof(
    const LeafHashSource& source, uint64_t index, uint64_t size);
// PROOF(first, D[second]). INVALID_ARGUMENT unless first <= second; empty
// when first is 0 or equals second.
absl::StatusOr<std::vector<std::string>> ConsistencyProof(
    const LeafHashSource& source, uint64_t first, uint64_t second);

// OK iff `proof` shows that `leaf_hash` is leaf `index` of the tree of
// `size` leaves whose root is `root`; otherwise PERMISSION_DENIED saying
// what failed.
absl::Status VerifyInclusion(uint64_t index, uint64_t size,
                             std::string_view leaf_hash,
                             const std::vector<std::string>& proof,
                             std::string_view root);
// OK iff `proof` shows that the tree of `first` leaves with root
// `first_root` is a prefix of the tree of `second` leaves with root
// `second_root`; otherwise PERMISSION_DENIED.
absl::Status VerifyConsistency(uint64_t first, uint64_t second,
                               const std::vector<std::string>& proof,
                               std::string_view first_root,
                               std::string_view second_root);

}  // namespace lethe::cert

#endif  // LETHE_CERT_MERKLE_H_

#include "cert/merkle.h"

#include <bit>

#include "absl/strings/str_cat.h"
#include "cert/encoding.h"

namespace lethe::cert {
namespace {

// The largest power of two smaller than n (n >= 2).
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

// RFC 6962's recursions over the leaf range [begin, end) of a source. A
// source that stores interior nodes answers every aligned complete subtree
// (the left child of every split is one) with one lookup, so a root or a
// proof costs O(log n) lookups; any other source has all the leaves read
// once, up front. The first error stops the work and is kept.
class Tree {
 public:
  Tree(const LeafHashSource& source, uint64_t size) : source_(source) {
    if (source_.StoresNodes()) return;
    auto leaves = source_.LeafHashes(0, size);
    if (leaves.ok()) {
      leaves_ = *std::move(leaves);
    } else {
      status_ = leaves.status();
    }
  }

  const absl::Status& status() const { return status_; }

  std::string Mth(uint64_t begin, uint64_t end) {
    const uint64_t n = end - begin;
    if (!status_.ok()) return "";
    if (n == 0) return Sha256("");
    if (n == 1) return Leaf(begin);
    if (source_.StoresNodes() && std::has_single_bit(n) && begin % n == 0) {
      auto node = source_.Subtree(std::countr_zero(n), begin / n);
      if (node.ok()) return *std::move(node);
      status_ = node.status();
      return "";
    }
    const uint64_t k = SplitPoint(n);
    return HashChildren(Mth(begin, begin + k), Mth(begin + k, end));
  }

  // RFC 6962 §2.1.1 PATH(m, D[begin:end]).
  void Path(uint64_t m, uint64_t begin, uint64_t end,
            std::vector<std::string>* out) {
    if (end - begin <= 1) return;
    const uint64_t k = SplitPoint(end - begin);
    if (m < k) {
      Path(m, begin, begin + k, out);
      out->push_back(Mth(begin + k, end));
    } else {
      Path(m - k, begin + k, end, out);
      out->push_back(Mth(begin, begin + k));
    }
  }

  // RFC 6962 §2.1.2 SUBPROOF(m, D[begin:end], b).
  void Subproof(uint64_t m, uint64_t begin, uint64_t end, bool b,
                std::vector<std::string>* out) {
    if (m == end - begin) {
      if (!b) out->push_back(Mth(begin, end));
      return;
    }
    const uint64_t k = SplitPoint(end - begin);
    if (m <= k) {
      Subproof(m, begin, begin + k, b, out);
      out->push_back(Mth(begin + k, end));
    } else {
      Subproof(m - k, begin + k, end, false, out);
      out->push_back(Mth(begin, begin + k));
    }
  }

 private:
  std::string Leaf(uint64_t i) {
    if (!source_.StoresNodes()) return leaves_[i];
    auto leaf = source_.LeafHashes(i, i + 1);
    if (leaf.ok() && leaf->size() == 1) return (*leaf)[0];
    status_ =
        leaf.ok() ? absl::InternalError("a leaf is missing") : leaf.status();
    return "";
  }

  const LeafHashSource& source_;
  std::vector<std::string> leaves_;  // when the source stores no nodes
  absl::Status status_;
};

absl::Status Fail(std::string_view what) {
  std::string msg(what);
  return absl::PermissionDeniedError(msg);
}

bool AllHashes(const std::vector<std::string>& proof) {
  for (const std::string& h : proof) {
    if (h.size() != kSha256Bytes) return false;
  }
  return true;
}

bool Lsb(uint64_t x) { return (x & 1) != 0; }

}  // namespace

std::string HashLeaf(std::string_view data) {
  std::string buf(1, '\x00');
  buf.append(data);
  return Sha256(buf);
}

std::string HashChildren(std::string_view left, std::string_view right) {
  std::string buf(1, '\x01');
  buf.append(left);
  buf.append(right);
  return Sha256(buf);
}

std::string CertificateLeafHash(std::string_view envelope) {
  return HashLeaf(Sha256(envelope));
}

absl::StatusOr<std::vector<std::string>> VectorLeafSource::LeafHashes(
    uint64_t begin, uint64_t end) const {
  if (begin > end || end > leaves_->size()) {
    return absl::OutOfRangeError(absl::StrCat("leaves [", begin, ", ", end,
                                              ") beyond ", leaves_->size()));
  }
  return std::vector<std::string>(
      leaves_->begin() + static_cast<std::ptrdiff_t>(begin),
      leaves_->begin() + static_cast<std::ptrdiff_t>(end));
}

std::vector<SubtreeNode> SubtreeNodes(int level, uint64_t index,
                                      const std::vector<std::string>& leaves) {
  std::vector<SubtreeNode> out;
  std::vector<std::string> row = leaves;
  for (int l = 1; l <= level && row.size() >= 2; ++l) {
    std::vector<std::string> up;
    up.reserve(row.size() / 2);
    const uint64_t first = index << (level - l);
    for (size_t i = 0; i + 1 < row.size(); i += 2) {
      up.push_back(HashChildren(row[i], row[i + 1]));
      out.push_back({l, first + i / 2, up.back()});
    }
    row = std::move(up);
  }
  return out;
}

absl::StatusOr<std::string> LeafHashSource::Subtree(int level,
                                                    uint64_t index) const {
  const uint64_t width = uint64_t{1} << level;
  auto leaves = LeafHashes(index * width, (index + 1) * width);
  if (!leaves.ok()) return leaves.status();
  VectorLeafSource all(&*leaves);
  return RootHash(all, width);
}

absl::StatusOr<std::string> RootHash(const LeafHashSource& source,
                                     uint64_t size) {
  Tree tree(source, size);
  std::string root = tree.Mth(0, size);
  if (!tree.status().ok()) return tree.status();
  return root;
}

absl::StatusOr<std::vector<std::string>> InclusionProof(
    const LeafHashSource& source, uint64_t index, uint64_t size) {
  if (index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("leaf ", index, " is not in a tree of ", size, " leaves"));
  }
  Tree tree(source, size);
  std::vector<std::string> proof;
  tree.Path(index, 0, size, &proof);
  if (!tree.status().ok()) return tree.status();
  return proof;
}

absl::StatusOr<std::vector<std::string>> ConsistencyProof(
    const LeafHashSource& source, uint64_t first, uint64_t second) {
  if (first > second) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a tree of ", first, " leaves cannot be a prefix of one of ", second));
  }
  std::vector<std::string> proof;
  if (first == 0 || first == second) return proof;
  Tree tree(source, second);
  tree.Subproof(first, 0, second, true, &proof);
  if (!tree.status().ok()) return tree.status();
  return proof;
}

absl::Status VerifyInclusion(uint64_t index, uint64_t size,
                             std::string_view leaf_hash,
                             const std::vector<std::string>& proof,
                             std::string_view root) {
  if (index >= size) return Fail("inclusion: leaf index beyond the tree size");
  if (leaf_hash.size() != kSha256Bytes || root.size() != kSha256Bytes ||
      !AllHashes(proof)) {
    return Fail("inclusion: hashes must be 32 bytes");
  }
  // RFC 9162 §2.1.3.2.
  uint64_t fn = index;
  uint64_t sn = size - 1;
  std::string r(leaf_hash);
  for (const std::string& p : proof) {
    if (sn == 0) return Fail("inclusion: proof longer than the tree is deep");
    if (Lsb(fn) || fn == sn) {
      r = HashChildren(p, r);
      if (!Lsb(fn)) {
        while (!Lsb(fn) && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = HashChildren(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return Fail("inclusion: proof shorter than the tree is deep");
  if (r != root) {
    return Fail("inclusion: the proof does not lead to the checkpoint's root");
  }
  return absl::OkStatus();
}

absl::Status VerifyConsistency(uint64_t first, uint64_t second,
                               const std::vector<std::string>& proof,
                               std::string_view first_root,
                               std::string_view second_root) {
  if (first > second) return Fail("consistency: the first tree is larger");
  if (first == second) {
    if (!proof.empty() || first_root != second_root) {
      return Fail("consistency: equal sizes need equal roots, empty proof");
    }
    return absl::OkStatus();
  }
  if (first == 0) {
    if (!proof.empty()) return Fail("consistency: from 0 needs no proof");
    return absl::OkStatus();
  }
  if (proof.empty() || !AllHashes(proof) || first_root.size() != kSha256Bytes ||
      second_root.size() != kSha256Bytes) {
    return Fail("consistency: malformed proof or roots");
  }
  // RFC 9162 §2.1.4.2.
  std::vector<std::string> path;
  if (std::has_single_bit(first)) path.emplace_back(first_root);
  path.insert(path.end(), proof.begin(), proof.end());
  uint64_t fn = first - 1;
  uint64_t sn = second - 1;
  while (Lsb(fn)) {
    fn >>= 1;
    sn >>= 1;
  }
  std::string fr = path[0];
  std::string sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const std::string& c = path[i];
    if (sn == 0) return Fail("consistency: proof too long");
    if (Lsb(fn) || fn == sn) {
      fr = HashChildren(c, fr);
      sr = HashChildren(c, sr);
      if (!Lsb(fn)) {
        while (!Lsb(fn) && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      sr = HashChildren(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return Fail("consistency: proof too short");
  if (fr != first_root || sr != second_root) {
    return Fail("consistency: the roots are not consistent: the log forked");
  }
  return absl::OkStatus();
}

}  // namespace lethe::cert

#include "cert/merkle.h"

#include <bit>
#include <span>

#include "absl/strings/str_cat.h"
#include "cert/encoding.h"

namespace lethe::cert {
namespace {

using Leaves = std::span<const std::string>;

// The largest power of two smaller than n (n >= 2).
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

std::string Mth(Leaves d) {
  if (d.empty()) return Sha256("");
  if (d.size() == 1) return d[0];
  const uint64_t k = SplitPoint(d.size());
  return HashChildren(Mth(d.first(k)), Mth(d.subspan(k)));
}

// RFC 6962 §2.1.1 PATH(m, D[n]).
void Path(uint64_t m, Leaves d, std::vector<std::string>* out) {
  if (d.size() <= 1) return;
  const uint64_t k = SplitPoint(d.size());
  if (m < k) {
    Path(m, d.first(k), out);
    out->push_back(Mth(d.subspan(k)));
  } else {
    Path(m - k, d.subspan(k), out);
    out->push_back(Mth(d.first(k)));
  }
}

// RFC 6962 §2.1.2 SUBPROOF(m, D[n], b).
void Subproof(uint64_t m, Leaves d, bool b, std::vector<std::string>* out) {
  if (m == d.size()) {
    if (!b) out->push_back(Mth(d));
    return;
  }
  const uint64_t k = SplitPoint(d.size());
  if (m <= k) {
    Subproof(m, d.first(k), b, out);
    out->push_back(Mth(d.subspan(k)));
  } else {
    Subproof(m - k, d.subspan(k), false, out);
    out->push_back(Mth(d.first(k)));
  }
}

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

absl::StatusOr<std::string> RootHash(const LeafHashSource& source,
                                     uint64_t size) {
  auto leaves = source.LeafHashes(0, size);
  if (!leaves.ok()) return leaves.status();
  return Mth(*leaves);
}

absl::StatusOr<std::vector<std::string>> InclusionProof(
    const LeafHashSource& source, uint64_t index, uint64_t size) {
  if (index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("leaf ", index, " is not in a tree of ", size, " leaves"));
  }
  auto leaves = source.LeafHashes(0, size);
  if (!leaves.ok()) return leaves.status();
  std::vector<std::string> proof;
  Path(index, *leaves, &proof);
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
  auto leaves = source.LeafHashes(0, second);
  if (!leaves.ok()) return leaves.status();
  Subproof(first, *leaves, true, &proof);
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

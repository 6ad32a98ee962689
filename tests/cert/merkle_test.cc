// The Merkle tree against the RFC 6962 vectors published in
// transparency-dev/merkle (testonly/constants.go, proof/verify_test.go),
// and against a naive implementation for every tree of 1..40 leaves.
#include "cert/merkle.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cert/encoding.h"

namespace lethe::cert {
namespace {

std::string H(const char* hex) { return *HexDecode(hex); }

std::vector<std::string> VectorLeaves() {
  std::vector<std::string> out;
  for (const char* hex :
       {"", "00", "10", "2021", "3031", "40414243", "5051525354555657",
        "606162636465666768696a6b6c6d6e6f"}) {
    out.push_back(HashLeaf(*HexDecode(hex)));
  }
  return out;
}

const char* const kRoots[] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};

struct ProofVector {
  uint64_t a;  // leaf index (inclusion) or first size (consistency)
  uint64_t size;
  std::vector<const char*> proof;
};

const std::vector<ProofVector>& InclusionVectors() {
  static const auto* v = new std::vector<ProofVector>{
      {0,
       8,
       {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
      {5,
       8,
       {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
      {2,
       3,
       {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
      {1,
       5,
       {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
  };
  return *v;
}

const std::vector<ProofVector>& ConsistencyVectors() {
  static const auto* v = new std::vector<ProofVector>{
      {1,
       8,
       {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
      {6,
       8,
       {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
      {2,
       5,
       {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
      {6,
       7,
       {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
  };
  return *v;
}

std::vector<std::string> Hashes(const std::vector<const char*>& hex) {
  std::vector<std::string> out;
  out.reserve(hex.size());
  for (const char* h : hex) out.push_back(H(h));
  return out;
}

TEST(MerkleTest, EmptyTreeRootIsHashOfNothing) {
  std::vector<std::string> none;
  VectorLeafSource source(&none);
  EXPECT_EQ(HexEncode(*RootHash(source, 0)),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(MerkleTest, RootsMatchPublishedVectors) {
  const auto leaves = VectorLeaves();
  VectorLeafSource source(&leaves);
  for (uint64_t n = 1; n <= 8; ++n) {
    EXPECT_EQ(HexEncode(*RootHash(source, n)), kRoots[n - 1]) << "size " << n;
  }
}

TEST(MerkleTest, InclusionProofsMatchPublishedVectors) {
  const auto leaves = VectorLeaves();
  VectorLeafSource source(&leaves);
  for (const ProofVector& v : InclusionVectors()) {
    EXPECT_EQ(*InclusionProof(source, v.a, v.size), Hashes(v.proof))
        << v.a << "@" << v.size;
    EXPECT_TRUE(VerifyInclusion(v.a, v.size, leaves[v.a], Hashes(v.proof),
                                H(kRoots[v.size - 1]))
                    .ok());
  }
}

TEST(MerkleTest, ConsistencyProofsMatchPublishedVectors) {
  const auto leaves = VectorLeaves();
  VectorLeafSource source(&leaves);
  for (const ProofVector& v : ConsistencyVectors()) {
    EXPECT_EQ(*ConsistencyProof(source, v.a, v.size), Hashes(v.proof))
        << v.a << "->" << v.size;
    EXPECT_TRUE(VerifyConsistency(v.a, v.size, Hashes(v.proof),
                                  H(kRoots[v.a - 1]), H(kRoots[v.size - 1]))
                    .ok());
  }
}

// The negative probes of transparency-dev's verifierCheck.
TEST(MerkleTest, CorruptedInclusionProofsFail) {
  const auto leaves = VectorLeaves();
  const std::string some =
      H("abacaba000000000000000000000000000000000000000000060061e00123456");
  const std::string empty_root = Sha256("");
  for (const ProofVector& v : InclusionVectors()) {
    const auto proof = Hashes(v.proof);
    const std::string root = H(kRoots[v.size - 1]);
    const std::string& leaf = leaves[v.a];
    auto fails = [&](uint64_t i, uint64_t n, std::string_view l,
                     const std::vector<std::string>& p, std::string_view r) {
      return !VerifyInclusion(i, n, l, p, r).ok();
    };
    EXPECT_TRUE(fails(v.a - 1, v.size, leaf, proof, root));
    EXPECT_TRUE(fails(v.a + 1, v.size, leaf, proof, root));
    EXPECT_TRUE(fails(v.a ^ 2, v.size, leaf, proof, root));
    EXPECT_TRUE(fails(v.a, v.size * 2, leaf, proof, root));
    EXPECT_TRUE(fails(v.a, v.size / 2, leaf, proof, root));
    EXPECT_TRUE(fails(v.a, v.size, "WrongLeaf", proof, root));
    EXPECT_TRUE(fails(v.a, v.size, leaf, proof, empty_root));
    EXPECT_TRUE(fails(v.a, v.size, leaf, proof, some));
    auto trailing = proof;
    trailing.emplace_back("");
    EXPECT_TRUE(fails(v.a, v.size, leaf, trailing, root));
    trailing.back() = root;
    EXPECT_TRUE(fails(v.a, v.size, leaf, trailing, root));
    auto preceding = proof;
    preceding.insert(preceding.begin(), root);
    EXPECT_TRUE(fails(v.a, v.size, leaf, preceding, root));
    for (size_t i = 0; i < proof.size(); ++i) {
      auto flipped = proof;
      flipped[i][0] ^= 8;
      EXPECT_TRUE(fails(v.a, v.size, leaf, flipped, root));
    }
    auto removed = proof;
    removed.pop_back();
    EXPECT_TRUE(fails(v.a, v.size, leaf, removed, root));
    if (proof.size() > 1) {
      auto inserted = proof;
      inserted.insert(inserted.begin() + 1, some);
      EXPECT_TRUE(fails(v.a, v.size, leaf, inserted, root));
    }
  }
}

TEST(MerkleTest, CorruptedConsistencyProofsFail) {
  for (const ProofVector& v : ConsistencyVectors()) {
    const auto proof = Hashes(v.proof);
    const std::string r1 = H(kRoots[v.a - 1]);
    const std::string r2 = H(kRoots[v.size - 1]);
    auto fails = [&](uint64_t m, uint64_t n, const std::vector<std::string>& p,
                     std::string_view a, std::string_view b) {
      return !VerifyConsistency(m, n, p, a, b).ok();
    };
    EXPECT_TRUE(fails(v.a - 1, v.size, proof, r1, r2));
    EXPECT_TRUE(fails(v.a + 1, v.size, proof, r1, r2));
    EXPECT_TRUE(fails(v.a ^ 2, v.size, proof, r1, r2));
    EXPECT_TRUE(fails(v.a, v.size * 2, proof, r1, r2));
    EXPECT_TRUE(fails(v.a, v.size / 2, proof, r1, r2));
    EXPECT_TRUE(fails(v.a, v.size, proof, "WrongRoot", r2));
    EXPECT_TRUE(fails(v.a, v.size, proof, r1, "WrongRoot"));
    EXPECT_TRUE(fails(v.a, v.size, proof, r2, r1));
    EXPECT_TRUE(fails(v.a, v.size, {}, r1, r2));
    for (const std::string& extra : {std::string(), r1, r2}) {
      auto trailing = proof;
      trailing.push_back(extra);
      EXPECT_TRUE(fails(v.a, v.size, trailing, r1, r2));
      auto preceding = proof;
      preceding.insert(preceding.begin(), extra);
      EXPECT_TRUE(fails(v.a, v.size, preceding, r1, r2));
    }
    auto truncated = proof;
    truncated.pop_back();
    EXPECT_TRUE(fails(v.a, v.size, truncated, r1, r2));
    for (size_t i = 0; i < proof.size(); ++i) {
      auto flipped = proof;
      flipped[i][0] ^= 16;
      EXPECT_TRUE(fails(v.a, v.size, flipped, r1, r2));
    }
  }
}

TEST(MerkleTest, TrivialConsistencyCases) {
  const std::string r1 = "don't care 1";
  const std::string r2 = "don't care 2";
  const std::string e = Sha256("");
  EXPECT_FALSE(VerifyConsistency(0, 0, {}, r1, r2).ok());
  EXPECT_FALSE(VerifyConsistency(1, 1, {}, r1, r2).ok());
  EXPECT_TRUE(VerifyConsistency(0, 0, {}, r1, r1).ok());
  EXPECT_TRUE(VerifyConsistency(0, 1, {}, r1, r2).ok());
  EXPECT_TRUE(VerifyConsistency(1, 1, {}, r2, r2).ok());
  EXPECT_FALSE(VerifyConsistency(1, 0, {}, r1, r2).ok());
  EXPECT_FALSE(VerifyConsistency(2, 1, {}, r1, r2).ok());
  EXPECT_FALSE(VerifyConsistency(1, 2, {}, r1, r2).ok());
  EXPECT_FALSE(VerifyConsistency(0, 0, {e}, e, e).ok());
  EXPECT_FALSE(VerifyConsistency(0, 1, {e}, e, e).ok());
  EXPECT_FALSE(VerifyConsistency(1, 1, {e}, e, e).ok());
}

// A naive RFC 6962 implementation, written from the definitions with no
// shared code, to check every proof of every tree up to 40 leaves.
std::string NaiveRoot(const std::vector<std::string>& d, size_t lo, size_t hi) {
  if (hi - lo == 1) return d[lo];
  size_t k = 1;
  while (k * 2 < hi - lo) k *= 2;
  std::string buf =
      "\x01" + NaiveRoot(d, lo, lo + k) + NaiveRoot(d, lo + k, hi);
  return Sha256(buf);
}

std::vector<std::string> NaivePath(const std::vector<std::string>& d, size_t m,
                                   size_t lo, size_t hi) {
  if (hi - lo <= 1) return {};
  size_t k = 1;
  while (k * 2 < hi - lo) k *= 2;
  std::vector<std::string> out;
  if (m < k) {
    out = NaivePath(d, m, lo, lo + k);
    out.push_back(NaiveRoot(d, lo + k, hi));
  } else {
    out = NaivePath(d, m - k, lo + k, hi);
    out.push_back(NaiveRoot(d, lo, lo + k));
  }
  return out;
}

TEST(MerkleTest, AllProofsUpTo40LeavesAgreeWithNaiveTreeAndVerify) {
  std::vector<std::string> leaves;
  leaves.reserve(40);
  for (int i = 0; i < 40; ++i) leaves.push_back(HashLeaf(std::to_string(i)));
  VectorLeafSource source(&leaves);
  std::vector<std::string> roots(41);
  for (uint64_t n = 1; n <= 40; ++n) {
    roots[n] = *RootHash(source, n);
    ASSERT_EQ(roots[n], NaiveRoot(leaves, 0, n)) << n;
  }
  for (uint64_t n = 1; n <= 40; ++n) {
    for (uint64_t i = 0; i < n; ++i) {
      const auto proof = *InclusionProof(source, i, n);
      ASSERT_EQ(proof, NaivePath(leaves, i, 0, n)) << i << "@" << n;
      ASSERT_TRUE(VerifyInclusion(i, n, leaves[i], proof, roots[n]).ok());
      ASSERT_FALSE(
          VerifyInclusion(i, n, leaves[(i + 1) % 40], proof, roots[n]).ok() &&
          n > 1);
    }
    for (uint64_t m = 1; m <= n; ++m) {
      const auto proof = *ConsistencyProof(source, m, n);
      ASSERT_TRUE(VerifyConsistency(m, n, proof, roots[m], roots[n]).ok())
          << m << "->" << n;
      if (m < n) {
        // A root from a different history must not pass.
        ASSERT_FALSE(
            VerifyConsistency(m, n, proof, HashLeaf("fork"), roots[n]).ok());
      }
    }
  }
}

// A source that stores interior nodes, as PostgreSQL's does (migration 8):
// a node is computed from its leaves the first time, then remembered.
class NodeStoringSource final : public LeafHashSource {
 public:
  explicit NodeStoringSource(const std::vector<std::string>* leaves)
      : leaves_(leaves) {}
  absl::StatusOr<std::vector<std::string>> LeafHashes(
      uint64_t begin, uint64_t end) const override {
    leaves_read += end - begin;
    return VectorLeafSource(leaves_).LeafHashes(begin, end);
  }
  bool StoresNodes() const override { return true; }
  absl::StatusOr<std::string> Subtree(int level,
                                      uint64_t index) const override {
    auto it = nodes_.find({level, index});
    if (it != nodes_.end()) return it->second;
    const uint64_t width = uint64_t{1} << level;
    auto leaves = LeafHashes(index * width, (index + 1) * width);
    if (!leaves.ok()) return leaves.status();
    const auto nodes = SubtreeNodes(level, index, *leaves);
    for (const auto& n : nodes) nodes_[{n.level, n.index}] = n.hash;
    EXPECT_EQ(nodes.back().hash,
              *LeafHashSource::Subtree(level, index));  // the plain way
    return nodes.back().hash;
  }
  mutable uint64_t leaves_read = 0;

 private:
  const std::vector<std::string>* leaves_;
  mutable std::map<std::pair<int, uint64_t>, std::string> nodes_;
};

TEST(MerkleTest, StoredNodesGiveTheSameRootsAndProofs) {
  std::vector<std::string> leaves;
  leaves.reserve(40);
  for (int i = 0; i < 40; ++i) leaves.push_back(HashLeaf(std::to_string(i)));
  VectorLeafSource plain(&leaves);
  NodeStoringSource nodes(&leaves);
  for (uint64_t n = 1; n <= 40; ++n) {
    ASSERT_EQ(*RootHash(nodes, n), *RootHash(plain, n)) << n;
    for (uint64_t i = 0; i < n; ++i) {
      ASSERT_EQ(*InclusionProof(nodes, i, n), *InclusionProof(plain, i, n))
          << i << "@" << n;
    }
    for (uint64_t m = 0; m <= n; ++m) {
      ASSERT_EQ(*ConsistencyProof(nodes, m, n), *ConsistencyProof(plain, m, n))
          << m << "->" << n;
    }
  }
}

TEST(MerkleTest, WithStoredNodesAProofReadsLogarithmicallyManyLeaves) {
  constexpr uint64_t kLeaves = 100000;
  std::vector<std::string> leaves;
  leaves.reserve(kLeaves);
  for (uint64_t i = 0; i < kLeaves; ++i) {
    leaves.push_back(HashLeaf(std::to_string(i)));
  }
  NodeStoringSource nodes(&leaves);
  const std::string root = *RootHash(nodes, kLeaves);  // fills the nodes
  EXPECT_EQ(root, *RootHash(VectorLeafSource(&leaves), kLeaves));
  nodes.leaves_read = 0;
  for (uint64_t i : {uint64_t{0}, uint64_t{31337}, kLeaves - 1}) {
    const auto proof = *InclusionProof(nodes, i, kLeaves);
    EXPECT_TRUE(VerifyInclusion(i, kLeaves, leaves[i], proof, root).ok());
  }
  const auto consistency = *ConsistencyProof(nodes, 77777, kLeaves);
  EXPECT_TRUE(VerifyConsistency(77777, kLeaves, consistency,
                                *RootHash(nodes, 77777), root)
                  .ok());
  // log2(100000) < 17: a few leaves per level, not 100000 per proof.
  EXPECT_LT(nodes.leaves_read, 200u);
}

TEST(MerkleTest, ProofRequestsOutsideTheTreeAreRejected) {
  std::vector<std::string> leaves(3, HashLeaf("x"));
  VectorLeafSource source(&leaves);
  EXPECT_EQ(InclusionProof(source, 3, 3).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ConsistencyProof(source, 3, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RootHash(source, 4).status().code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace lethe::cert

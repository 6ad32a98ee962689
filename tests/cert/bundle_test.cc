// Offline verification of a certificate bundle, and that no single flipped
// bit anywhere in a bundle survives it.
#include "cert/bundle.h"

#include <gtest/gtest.h>

#include "cert/dsse.h"
#include "cert/merkle.h"
#include "tests/cert/cert_test_util.h"

namespace lethe::cert {
namespace {

class BundleTest : public ::testing::Test {
 protected:
  BundleTest() : key_(PrivateKey::Generate()) {
    key_.set_info({"lethe.test/log", 0, 0});
    keys_ = {key_.public_key()};
  }

  absl::StatusOr<VerifiedCertificate> Verify(std::string_view json) {
    auto bundle = Bundle::Parse(json);
    if (!bundle.ok()) return bundle.status();
    return VerifyBundle(*bundle, keys_);
  }

  PrivateKey key_;
  std::vector<PublicKey> keys_;
};

TEST_F(BundleTest, ValidBundleVerifiesAndReturnsThePredicate) {
  const CompletionRecord record = testing::SampleRecord();
  for (uint64_t size : {1u, 2u, 7u, 13u}) {
    for (uint64_t index = 0; index < size; ++index) {
      const std::string json =
          testing::MakeBundle(record, key_, index, size).Serialize();
      auto verified = Verify(json);
      ASSERT_TRUE(verified.ok())
          << verified.status() << " " << index << "@" << size;
      EXPECT_EQ(verified->record.request_id, record.request_id);
      EXPECT_EQ(verified->leaf_index, index);
      EXPECT_EQ(verified->envelope_key_id, key_.public_key().key_id());
    }
  }
}

TEST_F(BundleTest, EverySingleBitFlipFailsVerification) {
  const std::string json =
      testing::MakeBundle(testing::SampleRecord(), key_, 5, 11).Serialize();
  ASSERT_TRUE(Verify(json).ok());
  int survivors = 0;
  for (size_t i = 0; i < json.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string tampered = json;
      tampered[i] = static_cast<char>(tampered[i] ^ (1 << bit));
      if (Verify(tampered).ok()) {
        ++survivors;
        ADD_FAILURE() << "flip of bit " << bit << " at byte " << i << " ('"
                      << json[i] << "') still verifies";
      }
    }
  }
  EXPECT_EQ(survivors, 0) << "of " << json.size() * 8 << " flips";
}

TEST_F(BundleTest, UnknownKeyFails) {
  const std::string json =
      testing::MakeBundle(testing::SampleRecord(), key_, 0, 3).Serialize();
  keys_ = {PrivateKey::Generate().public_key()};
  EXPECT_EQ(Verify(json).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(BundleTest, KeyOutsideItsValidityWindowFails) {
  const CompletionRecord record = testing::SampleRecord();
  const std::string json = testing::MakeBundle(record, key_, 0, 3).Serialize();
  PublicKey expired = key_.public_key();
  expired.set_info({"lethe.test/log", 0, record.completed_us - 1});
  keys_ = {expired};
  EXPECT_EQ(Verify(json).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(BundleTest, ProofForAnotherLeafFails) {
  Bundle b = testing::MakeBundle(testing::SampleRecord(), key_, 2, 9);
  b.leaf_index = 3;
  EXPECT_FALSE(VerifyBundle(b, keys_).ok());
  b.leaf_index = 2;
  b.tree_size = 10;
  EXPECT_FALSE(VerifyBundle(b, keys_).ok());
}

TEST_F(BundleTest, ValidSignatureOverNonCanonicalEnvelopeIsRefused) {
  Bundle b = testing::MakeBundle(testing::SampleRecord(), key_, 0, 1);
  b.envelope.insert(1, " ");
  EXPECT_FALSE(VerifyBundle(b, keys_).ok());
}

}  // namespace
}  // namespace lethe::cert

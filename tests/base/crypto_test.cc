#include "base/crypto.h"

#include <string>

#include "base/hex.h"
#include "gtest/gtest.h"

namespace lethe::base {
namespace {

TEST(HexTest, EncodesLowerCaseAndDecodesEitherCase) {
  EXPECT_EQ(HexEncode(std::string("\x00\x7f\xab\xff", 4)), "007fabff");
  EXPECT_EQ(HexDecode("007FabfF"), std::string("\x00\x7f\xab\xff", 4));
  EXPECT_EQ(HexDecode(""), "");
  EXPECT_EQ(HexDecode("abc"), std::nullopt);
  EXPECT_EQ(HexDecode("zz"), std::nullopt);
}

// FIPS 180-2 appendix B.1 and RFC 4231 test case 2.
TEST(CryptoTest, DigestsMatchPublishedVectors) {
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CryptoTest, StreamEqualsOneShotDigest) {
  Sha256Stream stream;
  stream.Update("a");
  stream.Update("");
  stream.Update("bc");
  Sha256Stream moved = std::move(stream);
  EXPECT_EQ(moved.Finish(), Sha256("abc"));
  EXPECT_EQ(Sha256Stream().Finish(), Sha256(""));
}

TEST(CryptoTest, RandomBytesAndSecureEquals) {
  const std::string a = RandomBytes(32), b = RandomBytes(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(SecureEquals(a, a));
  EXPECT_FALSE(SecureEquals(a, b));
  EXPECT_FALSE(SecureEquals(a, a.substr(1)));
}

}  // namespace
}  // namespace lethe::base

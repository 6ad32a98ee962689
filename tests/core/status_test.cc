// Torch-free pieces: Status/Result, SHA-256, the AUC, the report JSON.
#include "lethe/core/status.h"

#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "lethe/core/metrics.h"
#include "lethe/core/policy.h"
#include "lethe/core/report.h"
#include "lethe/core/sha256.h"

namespace lethe::core {
namespace {

TEST(Sha256Test, MatchesFipsVectors) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(
      Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, PaddingBoundaries) {
  // 55, 56 and 64 bytes straddle the one/two-block padding cases.
  EXPECT_EQ(Sha256Hex(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(Sha256Hex(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(Sha256Hex(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

Result<int> Half(int x) {
  if (x % 2) return InvalidArgumentError("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  LETHE_CORE_ASSIGN_OR_RETURN(int h, Half(x));
  LETHE_CORE_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusTest, ResultPropagatesErrors) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().ToString(), "INVALID_ARGUMENT: odd");
  EXPECT_EQ(static_cast<int>(Code::kFailedPrecondition), 9);  // gRPC number
}

TEST(MetricsTest, AucIsExactWithTies) {
  // Members have lower loss: perfect separation.
  EXPECT_DOUBLE_EQ(LossThresholdAuc({0.1f, 0.2f}, {0.5f, 0.9f}), 1.0);
  EXPECT_DOUBLE_EQ(LossThresholdAuc({0.5f, 0.9f}, {0.1f, 0.2f}), 0.0);
  // One tie counts one half: pairs (0.1<0.3)=1, (0.1<0.1)=.5, (0.3<0.3)=.5,
  // (0.3 vs 0.1)=0 -> 2/4.
  EXPECT_DOUBLE_EQ(LossThresholdAuc({0.1f, 0.3f}, {0.3f, 0.1f}), 0.5);
  EXPECT_DOUBLE_EQ(LossThresholdAuc({0.1f}, {0.2f, 0.05f, 0.3f}), 2.0 / 3);
  EXPECT_DOUBLE_EQ(LossThresholdAuc({}, {0.2f}), 0.5);
}

TEST(MetricsTest, NanLossesCountAsWorstAndTerminate) {
  // A diverged model's NaN losses used to hang the tie grouping.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_DOUBLE_EQ(LossThresholdAuc({nan, 0.1f}, {0.5f}), 0.5);
  EXPECT_DOUBLE_EQ(LossThresholdAuc({nan, nan}, {nan}), 0.5);
}

TEST(MetricsTest, GapIsMeanAbsoluteDifferenceInPoints) {
  Metrics a{0.10, 0.90, 0.80, 0.60};
  Metrics b{0.20, 0.90, 0.84, 0.50};
  EXPECT_NEAR(GapPoints(a, b), (10 + 0 + 4 + 10) / 4.0, 1e-9);
}

TEST(PolicyTest, MethodNamesRoundTrip) {
  for (const char* name : {"retrain", "sisa", "newton", "finetune",
                           "neggrad_plus", "scrub", "random_label", "salun"}) {
    Result<Method> m = ParseMethod(name);
    ASSERT_TRUE(m.ok()) << name;
    EXPECT_STREQ(MethodName(*m), name);
  }
  EXPECT_FALSE(ParseMethod("delete").ok());
  EXPECT_EQ(GuaranteeOf(Method::kNewton), Guarantee::kCertified);
  EXPECT_EQ(GuaranteeOf(Method::kSisa), Guarantee::kExact);
  EXPECT_EQ(GuaranteeOf(Method::kScrub), Guarantee::kApproximate);
}

TEST(ReportTest, JsonCarriesFieldsAndEscapes) {
  Report r;
  r.ok = true;
  r.method = "finetune";
  r.guarantee = "approximate";
  r.before = {0.05, 0.99, 0.85, 0.7};
  r.after = {0.3, 0.97, 0.84, 0.52, 0.83};
  Attempt a;
  a.method = "scrub";
  a.outcome = "failed_gate";
  a.reason = "MIA \"high\"\n";
  r.attempts.push_back(a);
  std::string json = ReportToJson(r);
  EXPECT_NE(json.find("\"method\":\"finetune\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"after\":{\"ua\":0.3,\"ra\":0.97,\"ta\":0.84,"
                      "\"mia_auc\":0.52,\"va\":0.83}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("MIA \\\"high\\\"\\n"), std::string::npos) << json;
  EXPECT_NE(json.find("\"reference\":null"), std::string::npos) << json;
  EXPECT_EQ(JsonString(std::string("\x01", 1)), "\"\\u0001\"");
}

}  // namespace
}  // namespace lethe::core

// The report's JSON: every attempt carries its typed failure as a stable
// string, beside the free-text reason.
#include "lethe/core/report.h"

#include <string>

#include <gtest/gtest.h>

namespace lethe::core {
namespace {

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(ReportJsonTest, AttemptsCarryTheirTypedFailure) {
  Report r;
  r.attempts.push_back({"finetune", "failed_gate", AttemptFailure::kMiaAuc,
                        "MIA AUC 0.7 > 0.6"});
  r.attempts.push_back({"retrain", "accepted", AttemptFailure::kNone, ""});
  const std::string json = ReportToJson(r);
  EXPECT_TRUE(Contains(json,
                       "\"outcome\":\"failed_gate\",\"failure\":\"mia_auc\","
                       "\"reason\":\"MIA AUC 0.7 > 0.6\""))
      << json;
  EXPECT_TRUE(Contains(json, "\"outcome\":\"accepted\",\"failure\":\"none\""))
      << json;
}

TEST(ReportJsonTest, FailureNamesAreStable) {
  EXPECT_STREQ(AttemptFailureName(AttemptFailure::kNone), "none");
  EXPECT_STREQ(AttemptFailureName(AttemptFailure::kError), "error");
  EXPECT_STREQ(AttemptFailureName(AttemptFailure::kTimeBudget), "time_budget");
  EXPECT_STREQ(AttemptFailureName(AttemptFailure::kCost), "cost");
  EXPECT_STREQ(AttemptFailureName(AttemptFailure::kMiaAuc), "mia_auc");
  EXPECT_STREQ(AttemptFailureName(AttemptFailure::kTestAccuracy),
               "test_accuracy");
  EXPECT_STREQ(AttemptFailureName(AttemptFailure::kForgetAccuracy),
               "forget_accuracy");
}

}  // namespace
}  // namespace lethe::core

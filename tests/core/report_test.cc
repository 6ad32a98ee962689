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
  EXPECT_STREQ(AttemptFailureName(AttemptFailure::kForgetConfidence),
               "forget_confidence");
  EXPECT_STREQ(AttemptFailureName(AttemptFailure::kCalibration), "calibration");
}

Calibration SomeCalibration(double shift) {
  Calibration c;
  c.available = true;
  c.forget_records = 20;
  c.validation_records = 500;
  c.validation_subjects = 10;
  c.resamples = 4000;
  c.alpha = 0.01;
  c.accuracy = {0.9 + shift, 0.8, 0.08, 0.55, 1.0, 0.2};
  c.confidence = {3.5 + shift, 2.0, 0.7, 0.4, 4.1, 0.03};
  return c;
}

TEST(ReportJsonTest, CalibratedGateIsReadable) {
  Report r;
  r.ok = true;
  r.gate = {1.0, 1.5, 100, 0.01, 0.25};
  r.calibration_before = SomeCalibration(0.05);
  r.calibration_after = SomeCalibration(0);
  r.calibration_after.neighbours = 10;
  r.calibration_after.matched_records = 150;
  r.calibration_after.offset_accuracy = -0.01;
  r.calibration_after.offset_confidence = -0.045;
  r.calibration_after.offset_records = 2000;
  r.calibration_before.confidence.value = 9;
  Attempt a{"finetune", "accepted", AttemptFailure::kNone, "", 1, true, {}};
  a.calibration = r.calibration_after;
  a.round = 2;
  r.attempts.push_back(a);
  const std::string json = ReportToJson(r);
  EXPECT_TRUE(Contains(json, "\"alpha\":0.01,\"adaptive_budget\":0.25"))
      << json;
  EXPECT_TRUE(Contains(json, "\"method\":\"finetune\",\"round\":2,")) << json;
  // The original was outside its interval, the result within.
  EXPECT_TRUE(Contains(json,
                       "\"confidence\":{\"value\":9,\"null_mean\":2,"
                       "\"null_sd\":0.7,\"lower\":0.4,\"upper\":4.1,"
                       "\"p_value\":0.03,\"within\":false}"))
      << json;
  EXPECT_TRUE(Contains(json,
                       "\"calibration_after\":{\"available\":true,"
                       "\"passed\":true"))
      << json;
  // Which null each was judged against.
  EXPECT_TRUE(Contains(json,
                       "\"resamples\":4000,\"null\":\"neighbours\","
                       "\"neighbours\":10,\"matched_records\":150,"
                       "\"offset_accuracy\":-0.01,\"offset_confidence\":"
                       "-0.045,\"offset_records\":2000,"))
      << json;
  EXPECT_TRUE(Contains(json,
                       "\"resamples\":4000,\"null\":\"subjects\","
                       "\"accuracy_drop_points\""))
      << json;
}

// Every field set, so that a field the encoding forgets shows in the JSON.
Report Full() {
  Report r;
  r.ok = true;
  r.method = "sisa";
  r.guarantee = "exact";
  r.undeclared_buffers = {"bn.running_mean", "bn.running_var"};
  r.failure = "none \"quoted\"";
  r.device = "cpu";
  r.subjects_requested = 3;
  r.forget_records = 60;
  r.retain_records = 1940;
  r.test_records = 1000;
  r.validation_records = 990;
  r.before = {0.01, 0.99, 0.85, 0.61, 0.86};
  r.after = {0.2, 0.95, 0.84, 0.52, 0.83};
  r.calibration_before = SomeCalibration(0.1);
  r.calibration_after = SomeCalibration(0);
  r.calibration_after.neighbours = 12;
  r.calibration_after.matched_records = 90;
  r.calibration_after.offset_accuracy = 0.25;
  r.calibration_after.offset_confidence = -0.5;
  r.calibration_after.offset_records = 7;
  r.has_reference = true;
  r.reference = {0.21, 0.94, 0.83, 0.5};
  r.gap_points = 1.25;
  r.gap_before_points = 9.5;
  r.gate = {0.55, 3, 5, 0.02, 0.25};
  r.attempts.push_back({"finetune",
                        "failed_gate",
                        AttemptFailure::kMiaAuc,
                        "MIA AUC 0.7 > 0.6",
                        1.5,
                        true,
                        {0.1, 0.9, 0.8, 0.7, 0.79},
                        SomeCalibration(0.3),
                        3});
  r.attempts.push_back({"sisa",
                        "accepted",
                        AttemptFailure::kNone,
                        "",
                        3.25,
                        true,
                        {0.2, 0.95, 0.84, 0.52}});
  r.timings = {0.5, 4.75, 1.25, 7.5};
  r.model_sha256 = std::string(64, 'a');
  r.newton_bound = 1e-3;
  r.newton_cumulative_bound = 2e-3;
  r.newton_budget = 0.1;
  r.sisa_retrained_shards = {1, 5};
  r.sisa_added_records = 7;
  r.sisa_rebuilt = true;
  r.reproducibility = {"1.13.0", 2, "cpu", true};
  return r;
}

TEST(ReportWireTest, RoundTripsEveryFieldAndRejectsMalformedBytes) {
  const Report r = Full();
  const std::string bytes = EncodeReport(r);
  Result<Report> back = DecodeReport(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(ReportToJson(*back), ReportToJson(r));
  EXPECT_EQ(back->attempts.size(), 2u);
  EXPECT_EQ(back->attempts[0].failure, AttemptFailure::kMiaAuc);
  EXPECT_EQ(back->attempts[0].round, 3);
  EXPECT_EQ(back->attempts[0].calibration.accuracy.value, 1.2);
  EXPECT_EQ(back->calibration_before.confidence.upper, 4.1);
  EXPECT_EQ(back->after.va, 0.83);
  EXPECT_EQ(back->sisa_retrained_shards, r.sisa_retrained_shards);
  EXPECT_EQ(back->undeclared_buffers, r.undeclared_buffers);
  for (size_t cut = 0; cut < bytes.size(); cut += 7) {
    EXPECT_EQ(DecodeReport(bytes.substr(0, cut)).status().code(),
              Code::kInvalidArgument)
        << cut;
  }
  EXPECT_FALSE(DecodeReport(bytes + "x").ok());
  // An attempt count the message cannot hold fails before allocating.
  std::string huge = bytes;
  EXPECT_FALSE(DecodeReport(huge.replace(20, 8, 8, '\xff')).ok());
}

}  // namespace
}  // namespace lethe::core

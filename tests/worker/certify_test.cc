// CompletionRecordOf: the gate an engine report records becomes the
// certificate's checks. The report is written by core::ReportToJson, as the
// worker stores it, so a field the two disagree on fails here.
#include "worker/certify.h"

#include <gtest/gtest.h>

#include "lethe/core/report.h"

namespace lethe::worker {
namespace {

using Bound = cert::MetricCheck::Bound;

core::Calibration Calibrated() {
  core::Calibration c;
  c.available = true;
  c.forget_records = 50;
  c.validation_records = 5000;
  c.validation_subjects = 100;
  c.resamples = 4000;
  c.alpha = 0.01;
  c.margin = 0.02;
  c.accuracy_drop_points = 0.8;
  c.allowed_drop_points = 2.4;
  c.accuracy = {0.86, 0.84, 0.05, 0.68, 0.98, 0.7};
  c.confidence = {0.52, 0.5, 0.04, 0.38, 0.63, 0.6};
  return c;
}

storage::CompletedRequest RequestWith(const core::Report& report,
                                      const std::string& policy_json) {
  storage::CompletedTask t;
  t.model_id = "00000000-0000-4000-8000-000000000001";
  t.model_name = "mlp";
  t.result_version = 2;
  t.parent_version = 1;
  t.method = report.method;
  t.digest_after = std::string(32, 'a');
  t.digest_before = std::string(32, 'b');
  t.records_removed = 50;
  t.report_json = core::ReportToJson(report);
  t.policy_json = policy_json;
  storage::CompletedRequest r;
  r.erasure_id = "00000000-0000-4000-8000-000000000002";
  r.legal_ground = "GDPR_ART17_1B_CONSENT_WITHDRAWN";
  r.subject_commitment = std::string(32, 'c');
  r.submitted_us = 1;
  r.completed_us = 2;
  r.tasks.push_back(t);
  return r;
}

core::Report Approximate() {
  core::Report r;
  r.ok = true;
  r.method = "finetune";
  r.guarantee = "approximate";
  r.forget_records = 50;
  r.before = {0.0, 1.0, 0.84, 0.6, 0.85};
  r.after = {0.14, 0.97, 0.84, 0.5, 0.842};
  r.gate = {1.0, 1.5, 100, 0.01, 0.25};
  r.calibration_before = Calibrated();
  r.calibration_after = Calibrated();
  return r;
}

TEST(CertifyTest, CalibratedGateBecomesBothEndsOfEachRange) {
  absl::StatusOr<cert::CompletionRecord> record =
      CompletionRecordOf(RequestWith(Approximate(), "{}"));
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_EQ(record->models.size(), 1u);
  const std::vector<cert::MetricCheck>& m = record->models[0].metrics;
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m[0].name, "validation_accuracy_drop_points");
  EXPECT_DOUBLE_EQ(m[0].value, 0.8);
  EXPECT_EQ(m[0].bound, Bound::kAtMost);
  EXPECT_DOUBLE_EQ(m[0].threshold, 2.4);
  EXPECT_EQ(m[1].name, "forget_accuracy");
  EXPECT_EQ(m[1].bound, Bound::kAtLeast);
  EXPECT_DOUBLE_EQ(m[1].threshold, 0.68);
  EXPECT_EQ(m[2].name, "forget_accuracy");
  EXPECT_EQ(m[2].bound, Bound::kAtMost);
  EXPECT_DOUBLE_EQ(m[2].threshold, 0.98);
  EXPECT_EQ(m[3].name, "forget_confidence");
  EXPECT_DOUBLE_EQ(m[3].value, 0.52);
  EXPECT_DOUBLE_EQ(m[3].threshold, 0.38);
  EXPECT_EQ(m[4].name, "forget_confidence");
  EXPECT_DOUBLE_EQ(m[4].threshold, 0.63);
  for (const cert::MetricCheck& c : m) EXPECT_TRUE(c.Met()) << c.name;
  EXPECT_EQ(record->models[0].guarantee, cert::Guarantee::kApproximate);
}

TEST(CertifyTest, FixedThresholdsAppearOnlyWhereThePolicySetsThem) {
  core::Report r = Approximate();
  r.gate.max_mia_auc = 0.6;
  r.gate.max_forget_acc_excess = 5;
  absl::StatusOr<cert::CompletionRecord> record =
      CompletionRecordOf(RequestWith(r, "{}"));
  ASSERT_TRUE(record.ok()) << record.status();
  const std::vector<cert::MetricCheck>& m = record->models[0].metrics;
  ASSERT_EQ(m.size(), 7u);
  EXPECT_EQ(m[5].name, "mia_auc");
  EXPECT_DOUBLE_EQ(m[5].threshold, 0.6);
  EXPECT_EQ(m[6].name, "forget_accuracy_excess_points");
  EXPECT_NEAR(m[6].value, 100 * ((1 - 0.14) - 0.84), 1e-9);
}

TEST(CertifyTest, CertifiedResultWithoutValidationDataStatesItsUtilityOnly) {
  core::Report r = Approximate();
  r.method = "newton";
  r.guarantee = "certified";
  r.calibration_after = core::Calibration{};
  r.calibration_after.alpha = 0.01;  // calibrating, but nothing to use
  r.calibration_after.validation_records = 40;
  absl::StatusOr<cert::CompletionRecord> record = CompletionRecordOf(
      RequestWith(r, R"({"newton": {"epsilon": 1, "delta": 0.0001}})"));
  ASSERT_TRUE(record.ok()) << record.status();
  const cert::ModelOutcome& m = record->models[0];
  EXPECT_EQ(m.guarantee, cert::Guarantee::kCertified);
  EXPECT_DOUBLE_EQ(m.epsilon, 1);
  ASSERT_EQ(m.metrics.size(), 1u);
  EXPECT_EQ(m.metrics[0].name, "validation_accuracy_drop_points");
  EXPECT_NEAR(m.metrics[0].value, 100 * (0.85 - 0.842), 1e-9);
  EXPECT_DOUBLE_EQ(m.metrics[0].threshold, 1.5);
}

TEST(CertifyTest, ExactResultsCarryNoGate) {
  core::Report r = Approximate();
  r.method = "retrain";
  r.guarantee = "exact";
  absl::StatusOr<cert::CompletionRecord> record =
      CompletionRecordOf(RequestWith(r, "{}"));
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_TRUE(record->models[0].metrics.empty());
  EXPECT_EQ(record->models[0].guarantee, cert::Guarantee::kExact);
}

}  // namespace
}  // namespace lethe::worker

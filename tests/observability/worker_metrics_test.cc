// WorkerMetrics: the families the worker reports, with their labels and
// buckets, read back from the registry.
#include "observability/worker_metrics.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "tests/observability/metrics_test_util.h"

namespace lethe::observability {
namespace {

using testing::CounterValue;
using testing::FindSample;
using testing::GaugeValue;
using testing::HistogramCount;

TEST(WorkerMetricsTest, SeriesThatAlertsNeedExistBeforeTheFirstTask) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  const auto f = registry.Collect();
  EXPECT_EQ(CounterValue(f, "lethe_certificates_issued_total", {}), 0);
  EXPECT_EQ(GaugeValue(f, "lethe_worker_busy"), 0);
  EXPECT_EQ(CounterValue(f, "lethe_worker_tasks_total", {{"outcome", "dead"}}),
            0);
}

TEST(WorkerMetricsTest, RecordsPhasesPerMethodInBucketsFrom5msToAnHour) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  metrics.ObservePhase("finetune", TaskPhase::kUnlearn, 12.5);
  metrics.ObservePhase("finetune", TaskPhase::kUnlearn, 0.02);
  metrics.ObservePhase("finetune", TaskPhase::kVerify, 3);
  metrics.ObserveTask("finetune", 20);
  const auto f = registry.Collect();
  auto unlearn = FindSample(f, "lethe_task_phase_duration_seconds",
                            {{"method", "finetune"}, {"phase", "unlearn"}});
  ASSERT_TRUE(unlearn);
  EXPECT_EQ(unlearn->histogram.sample_count, 2u);
  EXPECT_DOUBLE_EQ(unlearn->histogram.sample_sum, 12.52);
  const auto& buckets = unlearn->histogram.bucket;
  ASSERT_GE(buckets.size(), 3u);
  // From 5 ms: a small model's verify or publish phase is milliseconds.
  EXPECT_DOUBLE_EQ(buckets.front().upper_bound, 0.005);
  EXPECT_EQ(buckets.front().cumulative_count, 0u);
  EXPECT_DOUBLE_EQ(buckets[2].upper_bound, 0.025);
  EXPECT_EQ(buckets[2].cumulative_count, 1u);
  EXPECT_DOUBLE_EQ(buckets[buckets.size() - 2].upper_bound, 3600);
  EXPECT_EQ(HistogramCount(f, "lethe_task_phase_duration_seconds",
                           {{"method", "finetune"}, {"phase", "verify"}}),
            1);
  EXPECT_EQ(HistogramCount(f, "lethe_task_duration_seconds",
                           {{"method", "finetune"}}),
            1);
}

TEST(WorkerMetricsTest, CountsEscalationsRecordsCertificatesAndOutcomes) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  metrics.RecordEscalation("finetune", EscalationReason::kMiaAuc);
  metrics.RecordEscalation("finetune", EscalationReason::kMiaAuc);
  metrics.RecordEscalation("scrub", EscalationReason::kTimeBudget);
  metrics.AddRecordsRemoved("retrain", 7);
  metrics.AddRecordsRemoved("retrain", 0);
  metrics.RecordCertificateIssued();
  metrics.RecordTaskOutcome(TaskOutcome::kDead);
  metrics.ObserveBatchSize(3);
  metrics.SetBusy(true);
  metrics.ObserveOutcome("m-1", 0.51, -0.012);
  metrics.database().RecordError("claim_task");
  const auto f = registry.Collect();
  EXPECT_EQ(CounterValue(f, "lethe_escalations_total",
                         {{"method", "finetune"}, {"reason", "mia_auc"}}),
            2);
  EXPECT_EQ(CounterValue(f, "lethe_escalations_total",
                         {{"method", "scrub"}, {"reason", "time_budget"}}),
            1);
  EXPECT_EQ(
      CounterValue(f, "lethe_records_removed_total", {{"method", "retrain"}}),
      7);
  EXPECT_EQ(CounterValue(f, "lethe_certificates_issued_total", {}), 1);
  EXPECT_EQ(CounterValue(f, "lethe_worker_tasks_total", {{"outcome", "dead"}}),
            1);
  EXPECT_EQ(HistogramCount(f, "lethe_task_batch_size", {}), 1);
  EXPECT_EQ(GaugeValue(f, "lethe_worker_busy"), 1);
  auto auc = FindSample(f, "lethe_unlearning_mia_auc", {{"model_id", "m-1"}});
  ASSERT_TRUE(auc);
  EXPECT_DOUBLE_EQ(auc->histogram.sample_sum, 0.51);
  auto acc = FindSample(f, "lethe_unlearning_test_accuracy_change_ratio",
                        {{"model_id", "m-1"}});
  ASSERT_TRUE(acc);
  // -0.012 lies in (-0.015, -0.01]: 4 buckets up to -0.015 hold nothing.
  EXPECT_EQ(acc->histogram.bucket[4].cumulative_count, 0u);
  EXPECT_DOUBLE_EQ(acc->histogram.bucket[5].upper_bound, -0.01);
  EXPECT_EQ(acc->histogram.bucket[5].cumulative_count, 1u);
  EXPECT_EQ(CounterValue(f, "lethe_database_errors_total",
                         {{"operation", "claim_task"}}),
            1);
  // Only the model id labels the quality families.
  for (const auto& family : f) {
    if (family.name.rfind("lethe_unlearning_", 0) != 0) continue;
    for (const auto& m : family.metric) {
      ASSERT_EQ(m.label.size(), 1u) << family.name;
      EXPECT_EQ(m.label[0].name, "model_id");
    }
  }
}

TEST(WorkerMetricsTest, NamesAreStable) {
  EXPECT_STREQ(TaskPhaseName(TaskPhase::kPublish), "publish");
  EXPECT_STREQ(EscalationReasonName(EscalationReason::kTestAccuracy),
               "test_accuracy");
  EXPECT_STREQ(EscalationReasonName(EscalationReason::kForgetAccuracy),
               "forget_accuracy");
  EXPECT_STREQ(EscalationReasonName(EscalationReason::kError), "error");
  EXPECT_STREQ(EscalationReasonName(EscalationReason::kTimeBudget),
               "time_budget");
  EXPECT_STREQ(EscalationReasonName(EscalationReason::kCost), "cost");
  EXPECT_STREQ(TaskOutcomeName(TaskOutcome::kRetried), "retried");
}

}  // namespace
}  // namespace lethe::observability

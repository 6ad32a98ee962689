// What a worker reports about the unlearning it does: how long each phase
// of a task takes per method, how much it removes, how often a method's
// result is rejected and the chain escalates, certificates issued, and the
// quality of the results per model.
//
// Label values: `method` is core::MethodName() ("retrain", "finetune", ...),
// `model_id` a registered model's UUID; both are bounded by configuration.
// Never pass a subject id, request id or anything else per-request as a
// label value: every distinct value is a time series kept forever.
//
// Thread safety: every method may be called from any thread.
#ifndef LETHE_OBSERVABILITY_WORKER_METRICS_H_
#define LETHE_OBSERVABILITY_WORKER_METRICS_H_

#include <cstdint>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "observability/metrics.h"

namespace lethe::observability {

// core::PhaseTimings' phases plus publishing the new version.
enum class TaskPhase { kLoad, kUnlearn, kVerify, kPublish };
const char* TaskPhaseName(TaskPhase phase);  // "load", "unlearn", ...

// Why a method of the chain did not produce the model (core::Attempt):
//   kMiaAuc        failed the gate: MIA AUC above the policy's maximum
//   kTestAccuracy  failed the gate: validation accuracy dropped too far
//   kForgetAccuracy failed the gate: forget-set accuracy outside the
//                  calibrated interval (or over the fixed excess)
//   kForgetConfidence failed the gate: forget-set mean confidence outside
//                  the calibrated interval
//   kCalibration   failed the gate: too little validation data to calibrate
//   kError         the method failed (divergence, NaN, out of memory)
//   kTimeBudget    skipped: the policy's time budget was spent
//   kCost          skipped: estimated to cost more than the policy's share of
//                  a retrain (max_cost_fraction) with an exact method after it
enum class EscalationReason {
  kMiaAuc,
  kTestAccuracy,
  kForgetAccuracy,
  kForgetConfidence,
  kCalibration,
  kError,
  kTimeBudget,
  kCost
};
const char* EscalationReasonName(EscalationReason reason);  // "mia_auc", ...

// How a task attempt ended: done, retried later, or DEAD (out of attempts).
enum class TaskOutcome { kDone, kRetried, kDead };
const char* TaskOutcomeName(TaskOutcome outcome);  // "done", "retried", ...

class WorkerMetrics {
 public:
  // Registers the families in `registry`, which must outlive this object.
  explicit WorkerMetrics(prometheus::Registry& registry);

  // lethe_task_phase_duration_seconds{method,phase}
  void ObservePhase(std::string_view method, TaskPhase phase, double seconds);
  // lethe_task_duration_seconds{method}: one task, claim to publish.
  void ObserveTask(std::string_view method, double seconds);
  // lethe_worker_tasks_total{outcome}
  void RecordTaskOutcome(TaskOutcome outcome);
  // lethe_task_batch_size: erasure requests folded into one run.
  void ObserveBatchSize(int64_t requests);
  // lethe_records_removed_total{method}
  void AddRecordsRemoved(std::string_view method, int64_t records);
  // lethe_escalations_total{method,reason}: `method` is the one that
  // escalated to the next of the chain.
  void RecordEscalation(std::string_view method, EscalationReason reason);
  // lethe_certificates_issued_total
  void RecordCertificateIssued();
  // lethe_worker_busy: 1 while running a task, 0 while idle.
  void SetBusy(bool busy);
  // lethe_unlearning_mia_auc{model_id} and
  // lethe_unlearning_test_accuracy_change_ratio{model_id} (after - before,
  // as a fraction: -0.012 is 1.2 points lost), for an accepted result.
  void ObserveOutcome(std::string_view model_id, double mia_auc,
                      double test_accuracy_change);
  // lethe_engine_peak_rss_bytes{op}: the largest resident set of one
  // sandboxed engine run (op: validate, train, unlearn), for sizing the
  // worker's memory limit.
  void ObserveEngineRun(std::string_view op, int64_t peak_rss_bytes);
  // lethe_database_errors_total{operation}
  DatabaseMetrics& database() { return database_; }

 private:
  prometheus::Family<prometheus::Histogram>& phase_seconds_;
  prometheus::Family<prometheus::Histogram>& task_seconds_;
  prometheus::Family<prometheus::Counter>& tasks_;
  prometheus::Histogram& batch_size_;
  prometheus::Family<prometheus::Counter>& records_removed_;
  prometheus::Family<prometheus::Counter>& escalations_;
  prometheus::Counter& certificates_;
  prometheus::Gauge& busy_;
  prometheus::Family<prometheus::Histogram>& mia_auc_;
  prometheus::Family<prometheus::Histogram>& accuracy_change_;
  prometheus::Family<prometheus::Histogram>& engine_rss_;
  DatabaseMetrics database_;
};

}  // namespace lethe::observability

#endif  // LETHE_OBSERVABILITY_WORKER_METRICS_H_

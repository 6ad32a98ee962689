#include "observability/worker_metrics.h"

#include <string>

namespace lethe::observability {
namespace {

using prometheus::Histogram;

// Fitted to measured runs (docs/benchmarks.md, "Worker"; docs/operations.md
// lists them): on the 2-core reference machine a Fashion-MNIST 10k MLP
// erasure spent ~0.2 s loading, 0.3 s in finetune, 15 ms verifying and 15 ms
// publishing (0.55 s in all); the demo's 60,000-image MLP: load 1.6 s,
// finetune 4.2 s, verify 0.1 s, publish 29 ms; a small logistic
// regression's phases take a few milliseconds each; a full MLP retrain on
// 60,000 images takes ~6 s and a CNN retrain on CPU many minutes. So: 5 ms
// (a small model's verify or publish) to 1 h (the default time budget of a
// run), 2-2.5x apart through 10 s so that p50/p95 estimates stay within a
// factor of ~1.5 where runs usually fall, and coarser beyond.
const Histogram::BucketBoundaries& DurationBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,    2.5,
      5,     10,   30,    60,   120, 300,  600, 1800, 3600};
  return *b;
}

const Histogram::BucketBoundaries& BatchBuckets() {
  static const auto* b =
      new Histogram::BucketBoundaries{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
  return *b;
}

// Dense around the usual gate (max_mia_auc 0.55): 0.5 is chance.
const Histogram::BucketBoundaries& MiaAucBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.4, 0.45, 0.5, 0.52, 0.54, 0.55, 0.56, 0.58, 0.6, 0.65, 0.7, 0.8, 0.9};
  return *b;
}

// Dense around the usual gate (max_test_acc_drop 1.5 points).
const Histogram::BucketBoundaries& AccuracyChangeBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      -0.1,   -0.05, -0.03, -0.02, -0.015, -0.01,
      -0.005, 0,     0.005, 0.01,  0.02,   0.05};
  return *b;
}

// An engine run holds a model and its training set: 64 MiB (a small model
// validated) to 64 GiB, doubling.
const Histogram::BucketBoundaries& MemoryBuckets() {
  static const auto* b = [] {
    auto* v = new Histogram::BucketBoundaries;
    for (double x = 64.0 * (1 << 20); x <= 64.0 * (1LL << 30); x *= 2) {
      v->push_back(x);
    }
    return v;
  }();
  return *b;
}

}  // namespace

const char* TaskPhaseName(TaskPhase phase) {
  switch (phase) {
    case TaskPhase::kLoad:
      return "load";
    case TaskPhase::kUnlearn:
      return "unlearn";
    case TaskPhase::kVerify:
      return "verify";
    case TaskPhase::kPublish:
      return "publish";
  }
  return "unknown";
}

const char* EscalationReasonName(EscalationReason reason) {
  switch (reason) {
    case EscalationReason::kMiaAuc:
      return "mia_auc";
    case EscalationReason::kTestAccuracy:
      return "test_accuracy";
    case EscalationReason::kForgetAccuracy:
      return "forget_accuracy";
    case EscalationReason::kForgetConfidence:
      return "forget_confidence";
    case EscalationReason::kCalibration:
      return "calibration";
    case EscalationReason::kError:
      return "error";
    case EscalationReason::kTimeBudget:
      return "time_budget";
    case EscalationReason::kCost:
      return "cost";
  }
  return "unknown";
}

const char* TaskOutcomeName(TaskOutcome outcome) {
  switch (outcome) {
    case TaskOutcome::kDone:
      return "done";
    case TaskOutcome::kRetried:
      return "retried";
    case TaskOutcome::kDead:
      return "dead";
  }
  return "unknown";
}

WorkerMetrics::WorkerMetrics(prometheus::Registry& r)
    : phase_seconds_(prometheus::BuildHistogram()
                         .Name("lethe_task_phase_duration_seconds")
                         .Help("Time spent in one phase of an erasure task")
                         .Register(r)),
      task_seconds_(prometheus::BuildHistogram()
                        .Name("lethe_task_duration_seconds")
                        .Help("Time of one erasure task, claim to publish")
                        .Register(r)),
      tasks_(prometheus::BuildCounter()
                 .Name("lethe_worker_tasks_total")
                 .Help("Task attempts finished by this worker, per outcome")
                 .Register(r)),
      batch_size_(prometheus::BuildHistogram()
                      .Name("lethe_task_batch_size")
                      .Help("Erasure requests folded into one unlearning run")
                      .Register(r)
                      .Add({}, BatchBuckets())),
      records_removed_(prometheus::BuildCounter()
                           .Name("lethe_records_removed_total")
                           .Help("Training records removed from models")
                           .Register(r)),
      escalations_(prometheus::BuildCounter()
                       .Name("lethe_escalations_total")
                       .Help("Methods whose result was rejected or that "
                             "failed, so the chain moved on")
                       .Register(r)),
      certificates_(prometheus::BuildCounter()
                        .Name("lethe_certificates_issued_total")
                        .Help("Erasure certificates issued")
                        .Register(r)
                        .Add({})),
      busy_(prometheus::BuildGauge()
                .Name("lethe_worker_busy")
                .Help("1 while the worker runs a task, 0 while idle")
                .Register(r)
                .Add({})),
      mia_auc_(prometheus::BuildHistogram()
                   .Name("lethe_unlearning_mia_auc")
                   .Help("Membership-inference AUC of accepted results "
                         "(0.5 is chance)")
                   .Register(r)),
      accuracy_change_(prometheus::BuildHistogram()
                           .Name("lethe_unlearning_test_accuracy_change_ratio")
                           .Help("Test accuracy after minus before, as a "
                                 "fraction, of accepted results")
                           .Register(r)),
      engine_rss_(prometheus::BuildHistogram()
                      .Name("lethe_engine_peak_rss_bytes")
                      .Help("Largest resident set of one sandboxed engine "
                            "run, per operation")
                      .Register(r)),
      database_(r) {
  for (TaskOutcome o :
       {TaskOutcome::kDone, TaskOutcome::kRetried, TaskOutcome::kDead}) {
    tasks_.Add({{"outcome", TaskOutcomeName(o)}});
  }
}

void WorkerMetrics::ObservePhase(std::string_view method, TaskPhase phase,
                                 double seconds) {
  phase_seconds_
      .Add({{"method", std::string(method)}, {"phase", TaskPhaseName(phase)}},
           DurationBuckets())
      .Observe(seconds);
}

void WorkerMetrics::ObserveEngineRun(std::string_view op,
                                     int64_t peak_rss_bytes) {
  engine_rss_.Add({{"op", std::string(op)}}, MemoryBuckets())
      .Observe(static_cast<double>(peak_rss_bytes));
}

void WorkerMetrics::ObserveTask(std::string_view method, double seconds) {
  task_seconds_.Add({{"method", std::string(method)}}, DurationBuckets())
      .Observe(seconds);
}

void WorkerMetrics::RecordTaskOutcome(TaskOutcome outcome) {
  tasks_.Add({{"outcome", TaskOutcomeName(outcome)}}).Increment();
}

void WorkerMetrics::ObserveBatchSize(int64_t requests) {
  batch_size_.Observe(static_cast<double>(requests));
}

void WorkerMetrics::AddRecordsRemoved(std::string_view method,
                                      int64_t records) {
  if (records <= 0) return;
  records_removed_.Add({{"method", std::string(method)}})
      .Increment(static_cast<double>(records));
}

void WorkerMetrics::RecordEscalation(std::string_view method,
                                     EscalationReason reason) {
  escalations_
      .Add({{"method", std::string(method)},
            {"reason", EscalationReasonName(reason)}})
      .Increment();
}

void WorkerMetrics::RecordCertificateIssued() { certificates_.Increment(); }

void WorkerMetrics::SetBusy(bool busy) { busy_.Set(busy ? 1 : 0); }

void WorkerMetrics::ObserveOutcome(std::string_view model_id, double mia_auc,
                                   double test_accuracy_change) {
  const prometheus::Labels labels = {{"model_id", std::string(model_id)}};
  mia_auc_.Add(labels, MiaAucBuckets()).Observe(mia_auc);
  accuracy_change_.Add(labels, AccuracyChangeBuckets())
      .Observe(test_accuracy_change);
}

}  // namespace lethe::observability

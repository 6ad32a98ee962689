// What an unlearning run reports: the method that produced the model, its
// guarantee class, the metrics before and after, every escalation and why,
// and timings. ReportToJson gives the stable JSON form (fields in
// docs/engine.md). Torch-free.
#ifndef LETHE_CORE_REPORT_H_
#define LETHE_CORE_REPORT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lethe/core/calibration.h"
#include "lethe/core/metrics.h"
#include "lethe/core/status.h"

namespace lethe::core {

// Why an attempt did not produce the model, as a type: callers (the
// worker's escalation metrics) branch on this, never on the reason's text.
// AttemptFailureName gives the report's stable JSON string.
enum class AttemptFailure {
  kNone,          // "none": accepted
  kError,         // "error": the method failed (diverged, no state, ...)
  kTimeBudget,    // "time_budget": skipped, the policy's time budget spent
  kCost,          // "cost": skipped, estimated cost over max_cost_fraction
  kMiaAuc,        // "mia_auc": gate, MIA AUC over max_mia_auc
  kTestAccuracy,  // "test_accuracy": gate, test accuracy dropped too far
  // "forget_accuracy": gate, forget-set accuracy outside the calibrated
  // interval (or above test accuracy by more than the fixed excess)
  kForgetAccuracy,
  // "forget_confidence": gate, forget-set mean confidence outside the
  // calibrated interval
  kForgetConfidence,
  // "calibration": gate, too little validation data to calibrate against
  kCalibration,
};
const char* AttemptFailureName(AttemptFailure failure);

struct Attempt {
  std::string method;
  std::string outcome;  // "accepted", "failed_gate", "error", "skipped"
  AttemptFailure failure = AttemptFailure::kNone;  // set unless accepted
  std::string reason;  // why it did not produce the model ("" if accepted)
  double seconds = 0;
  bool has_metrics = false;
  Metrics metrics;
  Calibration calibration;  // with has_metrics, when the gate calibrates
  int round = 0;            // adaptive methods: 1, 2, ...; 0 otherwise
};

struct PhaseTimings {
  double load_s = 0;       // parsing the model/state, moving data to device
  double unlearn_s = 0;    // all methods tried
  double verify_s = 0;     // metrics of the original and of each result
  double reference_s = 0;  // the optional reference retrain
};

// The gate the policy applied to non-exact results (Policy's thresholds).
struct Gate {
  double max_mia_auc = 0;
  double max_test_acc_drop = 0;      // points, on the validation split
  double max_forget_acc_excess = 0;  // points
  double alpha = 0;                  // calibrated check; 0: off
  double adaptive_budget = 0;        // fraction of a retrain; 0: off
};

// What a bit-exact re-run of this report's methods depends on: on the CPU
// lethe's training is deterministic for a given LibTorch version and intra-op
// thread count (the CNN's bytes differed at 1, 2 and 4 threads: reductions
// split differently); on CUDA it is not bit-exact at all.
struct Reproducibility {
  std::string libtorch;      // e.g. "1.13.0"
  int intra_op_threads = 0;  // at::get_num_threads()
  std::string device;        // "cpu", "cuda:0"
  bool bit_exact = false;    // re-running under the same three gives the bytes
};

struct Report {
  bool ok = false;     // a model was produced
  std::string method;  // the method that produced it
  // "exact" | "retrained" | "parameters_retrained" | "certified" |
  // "approximate" (policy.h, Guarantee classes)
  std::string guarantee;
  // parameters_retrained: the buffers kept that the model did not declare
  // free of training data.
  std::vector<std::string> undeclared_buffers;
  std::string failure;  // when !ok: why the chain ended without a model
  std::string device;
  int64_t subjects_requested = 0;
  int64_t forget_records = 0;
  int64_t retain_records = 0;
  int64_t test_records = 0;
  int64_t validation_records = 0;
  Metrics before;
  Metrics after;  // valid when ok
  // The calibrated check of the original model (how far it was from
  // never-seen people: the evidence that there was something to forget) and
  // of the accepted result (certified or approximate).
  Calibration calibration_before;
  Calibration calibration_after;
  bool has_reference = false;
  Metrics reference;              // a retrain with the model's recipe
  double gap_points = 0;          // |after - reference|, mean over 4, points
  double gap_before_points = 0;   // doing nothing vs reference
  Gate gate;                      // as applied to non-exact attempts
  std::vector<Attempt> attempts;  // in chain order, the accepted one last
  PhaseTimings timings;
  std::string model_sha256;
  // Method-specific details.
  double newton_bound = 0;
  double newton_cumulative_bound = 0;
  double newton_budget = 0;
  std::vector<int> sisa_retrained_shards;
  int64_t sisa_added_records = 0;  // new training records the run trained
  bool sisa_rebuilt = false;       // a legacy state retrained from scratch
  Reproducibility reproducibility;
};

std::string ReportToJson(const Report& report);
// Every field as bytes and back (lethe/core/wire.h), for reports that cross
// the engine sandbox's boundary. Decode: INVALID_ARGUMENT for bytes that
// are not such an encoding (e.g. a truncated message).
std::string EncodeReport(const Report& report);
Result<Report> DecodeReport(std::string_view bytes);

// JSON string literal of s (quotes included), escaping per RFC 8259.
std::string JsonString(const std::string& s);

}  // namespace lethe::core

#endif  // LETHE_CORE_REPORT_H_

// The calibrated forgetting check of the verification gate (issue 16;
// docs/engine.md "The gate"). Torch-free.
//
// The question: does the model treat the forgotten records like records of
// people it never saw, given how much that varies for groups of this size?
// The reference population is the validation split (Partition::validation):
// test-split subjects the model never trained on, kept apart from the test
// records that accuracy is reported on. The null distribution of a
// statistic is drawn by resampling: groups of whole validation subjects
// with as many records as the forget set (the last subject's records cut to
// fit), so that a single person's request is judged with the variance of a
// single person's records. The checks are two-sided: a forget set scored
// far better than unseen people is still memorised; far worse is a trace of
// its own (the model was pushed away from those records).
//
// Two statistics, each against its own null:
// - accuracy on the group;
// - confidence rank: each record's confidence, LiRA's logit-scaled
//   probability of the true class (Carlini et al., S&P 2022), phi =
//   log(p / (1 - p)), from the logits (z_y - logsumexp of the others),
//   placed among the validation records' (its mid-rank, in [0, 1]),
//   averaged over the group. About 0.5
//   for never-seen people; it moves when a record's loss falls from 0.3 to
//   0.001, which accuracy does not see, and unlike a mean of phi it is not
//   dominated by the few records at phi's extremes. (A mean of raw phi was
//   tried first: on the gate test's memorised MLP its null interval for 20
//   records was so wide that the original model passed.)
// A statistic passes when it lies within the null's central 1 - alpha/2
// interval (empirical quantiles; Bonferroni over the two statistics),
// widened on each side by an equivalence margin, so a model that never saw
// the forgotten people fails the check with probability at most about
// alpha, when those people are like the validation subjects. The margin is
// for what "like" cannot promise: the validation people come from the test
// split, the forgotten ones from the training split, and the two differ a
// little (retrains of 20-person requests on the Fashion-MNIST benchmark
// scored 1-2 accuracy points above validation groups; with 1,000 records
// the null interval is narrower than that).
//
// What it assumes: the forgotten people are exchangeable with the
// validation subjects (drawn from the same population). A person whose
// records are unusual (a cluster of look-alike images, a rare class) is
// compared with typical people; docs/engine.md gives the measured effect.
//
// The difficulty-matched null (NeighbourMatches, the policy's
// gate_neighbours) weakens that assumption to "exchangeable with never-seen
// records that look alike": each forget record is compared with its k
// nearest validation records of the same label in the model's input space
// (MatchNeighbours, methods.h). A null group takes the neighbours'
// outcomes under a Poisson(1) bootstrap of the matched records (the same
// weights for every forget record: the uncertainty of the neighbours' own
// outcomes, large where a cluster's records share a few neighbours), and
// adds each record's own chance: a hit drawn at its neighbours' smoothed
// hit rate, one neighbour's deviation from their mean rank. A
// person's records are then judged against records like them, whatever
// region of the input space they sit in, not against typical people. What
// it does not see: a person's own effect beyond the look of their records
// (a writer's habit shared by all their records but not by look-alikes of
// other people); the subjects null holds that, as the spread of whole
// validation people. docs/engine.md gives the measured trade-off.
#ifndef LETHE_CORE_CALIBRATION_H_
#define LETHE_CORE_CALIBRATION_H_

#include <cstdint>
#include <vector>

#include "lethe/core/status.h"

namespace lethe::core {

// One statistic of the forget set against its null distribution.
struct CalibratedStat {
  double value = 0;      // on the forget set
  double null_mean = 0;  // over the resampled never-seen groups
  double null_sd = 0;
  double lower = 0;  // the accepted interval [lower, upper]
  double upper = 0;
  double p_value = 1;  // two-sided, empirical (with the +1 correction)
  // lower is the look-alike floor (ApplyLookAlikeFloor), above the null's
  // own lower end; not in the report: lower says the bound that held.
  bool floored = false;
  bool within() const { return value >= lower && value <= upper; }
};

struct Calibration {
  bool available = false;  // false: too little validation data (below)
  // The utility check (CheckUtility), filled by the engine: the drop in
  // validation accuracy from the request's model, and the most it may be.
  double accuracy_drop_points = 0;
  double allowed_drop_points = 0;
  int64_t forget_records = 0;
  int64_t validation_records = 0;
  int64_t validation_subjects = 0;
  int64_t resamples = 0;
  double alpha = 0;   // the check's false-rejection rate for a never-seen set
  double margin = 0;  // added to each side of both intervals
  // The null: 0, groups of whole validation subjects; k > 0, each forget
  // record's k nearest validation records (NeighbourMatches), of which
  // `matched_records` distinct ones.
  int64_t neighbours = 0;
  int64_t matched_records = 0;
  // The matching's offset the null was moved by (NeighbourMatches), and on
  // how many never-seen records it was measured.
  double offset_accuracy = 0;
  double offset_confidence = 0;
  int64_t offset_records = 0;
  CalibratedStat accuracy;    // fraction correct
  CalibratedStat confidence;  // mean confidence rank, in [0, 1]
  bool passed() const {
    return available && accuracy.within() && confidence.within();
  }
};

// The per-record outcome of a model on a set of records.
struct RecordScores {
  std::vector<float> losses;  // cross-entropy of the true class
  std::vector<char> correct;  // 1 if the arg-max is the true class
  // phi per record, computed from the logits (Evaluate); when empty, phi
  // is derived from the loss (ConfidenceOfLoss), which saturates where a
  // float32 loss rounds to 0.
  std::vector<float> confidence;
};

struct CalibrationOptions {
  double alpha = 0.01;  // in (0, 1)
  double margin = 0;    // in [0, 1): accuracy fraction and rank alike
  int resamples = 4000;
  uint64_t seed = 0;
};

// For each forget record, the positions (in the validation arrays given to
// CalibrateForgetSet) of its k nearest validation records, nearest first;
// -1 fills a row where fewer exist. Made once per request by
// MatchNeighbours (methods.h): it depends on the data, not on the model.
struct NeighbourMatches {
  int64_t k = 0;
  std::vector<int64_t> index;  // forget records x k, row-major
  // The matching's own offset: validation records (positions) matched the
  // same way among the other validation people, reference x k. Nearest
  // neighbours lean towards denser regions, where a model is surer; on
  // Fashion-MNIST retrains scored 0.04-0.06 of confidence rank below their
  // look-alikes for that reason. Never-seen records matched like the
  // forgotten ones show that offset, and the null is moved by it.
  std::vector<int64_t> reference;
  std::vector<int64_t> reference_index;
};

// How many never-seen records measure the matching's offset (at most).
inline constexpr int64_t kMatchingReferenceRecords = 2000;

// The look-alike floor of the matched null. The matched null is scored by
// the candidate itself, so a method that damages the person's region of
// the input space (random labels on a cluster of look-alike images) drags
// the look-alikes down with the person, and the null with them: on
// memorised-cluster, random_label results that misclassified half of a
// person's images (a retrain: 3%) passed it. The floor judges the lower
// side against the look-alikes as the request's own model scores them
// (calibration_before): a candidate below `before.lower - radii x radius`
// (radius: half that interval's width) has forgotten more than a retrain
// does. kLookAlikeFloorRadii was the smallest multiple of 0.5 that every
// exact retrain of the tuning people passed (their largest shortfall: 1.4
// radii; docs/benchmarks.md).
inline constexpr double kLookAlikeFloorRadii = 1.5;
double LookAlikeFloor(const CalibratedStat& before);
// Where both are matched-null calibrations, raises each of `after`'s lower
// ends to the floor from `before` (the request's model's), marking it
// floored: the report and the certificate then state the bound that held.
void ApplyLookAlikeFloor(const Calibration& before, Calibration& after);

// Needs at least this many validation records and subjects; below either
// the result is !available and the gate cannot accept an approximate result.
inline constexpr int64_t kMinValidationRecords = 100;
inline constexpr int64_t kMinValidationSubjects = 5;

// The utility check: the model's validation accuracy dropped from
// `before`'s (per-record hits on the same records) by more than
// max_drop_points, beyond doubt at level alpha: the drop minus
// z(1 - alpha) paired standard errors (McNemar's, sqrt(discordant) / n)
// must be at most max_drop_points. A retrain's accuracy differs from the
// original's by chance as well (issue 16: a fixed 1.5-point limit rejected
// exact retrains); the slack is that chance on the validation records.
// alpha 0: no slack.
struct UtilityCheck {
  double drop_points = 0;
  double allowed_points = 0;  // max_drop_points + the slack
  bool passed() const { return drop_points <= allowed_points; }
};
UtilityCheck CheckUtility(const std::vector<char>& before,
                          const std::vector<char>& after,
                          double max_drop_points, double alpha);

// The standard normal quantile (Acklam's approximation, relative error
// below 1.2e-9), p in (0, 1).
double NormalQuantile(double p);

// LiRA's phi from a cross-entropy loss, clamped to [-20, 20] (a loss of 0
// would be +infinity; a NaN loss counts as the least confident). On a
// confident model many float32 losses are 0 and tie at the clamp: use the
// logits' phi (RecordScores::confidence) where there are logits.
double ConfidenceOfLoss(float loss);

// `forget`: the model's scores on the forget set; `validation`: on the
// validation records, with `validation_subject` the subject of each (any
// integer id). `matches` (optional, k > 0): draw the difficulty-matched
// null instead of whole subjects. INVALID_ARGUMENT for mismatched sizes, an
// empty forget set, matches out of range, a forget record with no
// neighbour, or options out of range.
Result<Calibration> CalibrateForgetSet(
    const RecordScores& forget, const RecordScores& validation,
    const std::vector<int64_t>& validation_subject,
    const CalibrationOptions& options,
    const NeighbourMatches* matches = nullptr);

}  // namespace lethe::core

#endif  // LETHE_CORE_CALIBRATION_H_

#include "lethe/core/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <utility>

namespace lethe::core {
namespace {

constexpr double kMaxConfidence = 20;

// A validation subject's records, as prefix sums so that a group that takes
// only its first k records costs O(1).
struct SubjectSums {
  std::vector<double> correct{0};
  std::vector<double> confidence{0};
  int64_t size() const { return static_cast<int64_t>(correct.size()) - 1; }
};

CalibratedStat Summarise(double value, std::vector<double> null, double alpha,
                         double margin) {
  CalibratedStat s;
  s.value = value;
  std::sort(null.begin(), null.end());
  const double n = static_cast<double>(null.size());
  double sum = 0;
  for (double v : null) sum += v;
  s.null_mean = sum / n;
  double ss = 0;
  for (double v : null) ss += (v - s.null_mean) * (v - s.null_mean);
  s.null_sd = null.size() > 1 ? std::sqrt(ss / (n - 1)) : 0;
  // Bonferroni over the two statistics, two-sided: alpha / 4 in each tail.
  const double q = alpha / 4;
  const auto last = static_cast<double>(null.size() - 1);
  s.lower = null[static_cast<size_t>(std::floor(q * last))] - margin;
  s.upper = null[static_cast<size_t>(std::ceil((1 - q) * last))] + margin;
  const auto below = static_cast<double>(
      std::upper_bound(null.begin(), null.end(), value) - null.begin());
  const auto above = static_cast<double>(
      null.end() - std::lower_bound(null.begin(), null.end(), value));
  s.p_value = std::min(1.0, 2 * std::min(below + 1, above + 1) / (n + 1));
  return s;
}

}  // namespace

double ConfidenceOfLoss(float loss) {
  if (std::isnan(loss)) return -kMaxConfidence;
  const double l = std::max(0.0, static_cast<double>(loss));
  // phi = log p - log(1 - p), p = exp(-l): -l - log(-expm1(-l)).
  const double one_minus_p = -std::expm1(-l);
  if (one_minus_p <= 0) return kMaxConfidence;
  return std::clamp(-l - std::log(one_minus_p), -kMaxConfidence,
                    kMaxConfidence);
}

namespace {

Status CheckInputs(const RecordScores& forget, const RecordScores& validation,
                   const std::vector<int64_t>& validation_subject,
                   const CalibrationOptions& options) {
  if (forget.losses.empty() || forget.losses.size() != forget.correct.size()) {
    return InvalidArgumentError(
        "calibration needs a non-empty forget set with a loss and an outcome "
        "per record");
  }
  if (validation.losses.size() != validation.correct.size() ||
      validation.losses.size() != validation_subject.size()) {
    return InvalidArgumentError(
        "calibration needs a loss, an outcome and a subject per validation "
        "record");
  }
  if ((!forget.confidence.empty() &&
       forget.confidence.size() != forget.losses.size()) ||
      (!validation.confidence.empty() &&
       validation.confidence.size() != validation.losses.size())) {
    return InvalidArgumentError(
        "calibration: confidences, when given, need one per record");
  }
  if (!(options.alpha > 0 && options.alpha < 1) || options.resamples < 100 ||
      !(options.margin >= 0 && options.margin < 1)) {
    return InvalidArgumentError(
        "calibration wants alpha in (0, 1), a margin in [0, 1) and at least "
        "100 resamples");
  }
  return OkStatus();
}

// Every entry of `v` in [lowest, validation).
bool AllIn(const std::vector<int64_t>& v, int64_t lowest, size_t validation) {
  return std::all_of(v.begin(), v.end(), [&](int64_t x) {
    return x >= lowest && x < static_cast<int64_t>(validation);
  });
}

Status CheckMatches(const NeighbourMatches& m, size_t forget,
                    size_t validation) {
  const auto k = static_cast<size_t>(m.k);
  if (m.k < 0 || m.k == 1 || m.index.size() != forget * k) {
    return InvalidArgumentError(
        "calibration: neighbour matches need k 0 or at least 2, and k per "
        "forget record");
  }
  if (m.reference_index.size() != m.reference.size() * k) {
    return InvalidArgumentError(
        "calibration: neighbour matches need k per reference record");
  }
  if (!AllIn(m.reference, 0, validation)) {
    return InvalidArgumentError(
        "calibration: a reference record names no validation record");
  }
  if (!AllIn(m.index, -1, validation) ||
      !AllIn(m.reference_index, -1, validation)) {
    return InvalidArgumentError(
        "calibration: a neighbour match names no validation record");
  }
  for (size_t i = 0; i < forget && k > 0; ++i) {
    const auto row = m.index.begin() + static_cast<std::ptrdiff_t>(i * k);
    if (std::all_of(row, row + static_cast<std::ptrdiff_t>(k),
                    [](int64_t v) { return v < 0; })) {
      return InvalidArgumentError("calibration: forget record " +
                                  std::to_string(i) +
                                  " has no matched validation record");
    }
  }
  return OkStatus();
}

double Phi(const RecordScores& s, size_t i) {
  if (s.confidence.empty()) return ConfidenceOfLoss(s.losses[i]);
  const float c = s.confidence[i];
  // NaN (a diverged model): the least confident.
  return std::isnan(c) ? -std::numeric_limits<double>::infinity()
                       : static_cast<double>(c);
}

// A record's confidence as its rank among the validation records' (mid-
// ranks for ties, in [0, 1]): robust to the heavy tails of phi, where a
// mean of raw phi is dominated by a few records at the extremes.
class Ranks {
 public:
  explicit Ranks(const RecordScores& validation) {
    sorted_.reserve(validation.losses.size());
    for (size_t i = 0; i < validation.losses.size(); ++i) {
      sorted_.push_back(Phi(validation, i));
    }
    std::sort(sorted_.begin(), sorted_.end());
  }
  double Of(double phi) const {
    if (sorted_.empty()) return 0.5;
    const auto lo = std::lower_bound(sorted_.begin(), sorted_.end(), phi);
    const auto hi = std::upper_bound(lo, sorted_.end(), phi);
    return (static_cast<double>(lo - sorted_.begin()) +
            0.5 * static_cast<double>(hi - lo)) /
           static_cast<double>(sorted_.size());
  }

 private:
  std::vector<double> sorted_;
};

// Per validation subject, the running sums of its records' hits and
// confidence ranks (`hit` and `rank` per validation record).
std::vector<SubjectSums> BySubject(const std::vector<int64_t>& subject,
                                   const std::vector<double>& hit,
                                   const std::vector<double>& rank) {
  std::map<int64_t, SubjectSums> by_subject;
  for (size_t i = 0; i < subject.size(); ++i) {
    SubjectSums& s = by_subject[subject[i]];
    s.correct.push_back(s.correct.back() + hit[i]);
    s.confidence.push_back(s.confidence.back() + rank[i]);
  }
  std::vector<SubjectSums> out;
  out.reserve(by_subject.size());
  for (auto& [id, s] : by_subject) out.push_back(std::move(s));
  return out;
}

// Groups of whole subjects drawn with replacement (a bootstrap: a forget
// set as large as the validation split still gets the variance of an
// independent group), the last one cut to `records`; their mean accuracy
// and confidence rank.
void DrawNull(const std::vector<SubjectSums>& subjects, int64_t records,
              const CalibrationOptions& options, std::vector<double>& accuracy,
              std::vector<double>& confidence) {
  std::mt19937_64 rng(options.seed ^ 0xca1b4a7e5eedULL);
  std::uniform_int_distribution<size_t> pick(0, subjects.size() - 1);
  const auto n = static_cast<double>(records);
  accuracy.reserve(static_cast<size_t>(options.resamples));
  confidence.reserve(static_cast<size_t>(options.resamples));
  for (int b = 0; b < options.resamples; ++b) {
    int64_t need = records;
    double sum_correct = 0;
    double sum_confidence = 0;
    while (need > 0) {
      const SubjectSums& s = subjects[pick(rng)];
      const int64_t take = std::min(need, s.size());
      sum_correct += s.correct[static_cast<size_t>(take)];
      sum_confidence += s.confidence[static_cast<size_t>(take)];
      need -= take;
    }
    accuracy.push_back(sum_correct / n);
    confidence.push_back(sum_confidence / n);
  }
}

// The matching's offset (NeighbourMatches::reference): never-seen records'
// outcomes minus what their own neighbours predict, as the null predicts
// (the smoothed hit rate; the mean rank), averaged. Fills c's offsets.
void MatchingOffset(const NeighbourMatches& m, const std::vector<double>& hit,
                    const std::vector<double>& rank, Calibration& c) {
  const auto k = static_cast<size_t>(m.k);
  double acc = 0, conf = 0;
  int64_t rows = 0;
  for (size_t i = 0; i < m.reference.size(); ++i) {
    double n = 0, h = 0, r = 0;
    for (size_t j = 0; j < k; ++j) {
      const int64_t v = m.reference_index[i * k + j];
      if (v < 0) continue;
      n += 1;
      h += hit[static_cast<size_t>(v)];
      r += rank[static_cast<size_t>(v)];
    }
    if (n == 0) continue;
    const auto self = static_cast<size_t>(m.reference[i]);
    acc += hit[self] - (h + 0.5) / (n + 1);
    conf += rank[self] - r / n;
    ++rows;
  }
  c.offset_records = rows;
  c.offset_accuracy = rows > 0 ? acc / static_cast<double>(rows) : 0;
  c.offset_confidence = rows > 0 ? conf / static_cast<double>(rows) : 0;
}

// The matched records, numbered 0..distinct-1, and each forget record's
// row of them, with its mean rank and the scale of its deviations.
struct MatchedRows {
  std::vector<size_t> matched;  // number -> validation position
  std::vector<std::vector<size_t>> rows;
  std::vector<double> mean_rank, scale;
  std::vector<size_t> wide;  // rows with at least two neighbours
};

MatchedRows RowsOf(const NeighbourMatches& m, const std::vector<double>& rank) {
  const auto k = static_cast<size_t>(m.k);
  const size_t forget = m.index.size() / k;
  MatchedRows out;
  out.rows.resize(forget);
  std::vector<int64_t> slot(rank.size(), -1);
  for (size_t i = 0; i < forget; ++i) {
    for (size_t j = 0; j < k; ++j) {
      const int64_t v = m.index[i * k + j];
      if (v < 0) continue;
      auto& s = slot[static_cast<size_t>(v)];
      if (s < 0) {
        s = static_cast<int64_t>(out.matched.size());
        out.matched.push_back(static_cast<size_t>(v));
      }
      out.rows[i].push_back(static_cast<size_t>(s));
    }
  }
  out.mean_rank.resize(forget);
  out.scale.resize(forget);
  for (size_t i = 0; i < forget; ++i) {
    double r = 0;
    for (size_t s : out.rows[i]) r += rank[out.matched[s]];
    const auto n = static_cast<double>(out.rows[i].size());
    out.mean_rank[i] = r / n;
    out.scale[i] = n > 1 ? std::sqrt(n / (n - 1)) : 0;
    if (n > 1) out.wide.push_back(i);
  }
  return out;
}

// The difficulty-matched null (calibration.h). Each resample first weights
// the matched records with Poisson(1) bootstrap weights, the same for
// every forget record: the uncertainty of the neighbours' own outcomes,
// shared where neighbours are. Then, per forget record:
// - accuracy: a hit with the probability its neighbours' weighted hits
//   give, smoothed as Jeffreys' (hits + 1/2) / (k + 1);
// - confidence rank: the neighbours' weighted mean (over all rows at once)
//   plus one neighbour's deviation from its row's mean, drawn uniformly and
//   scaled by sqrt(k / (k - 1)) so that its variance is the neighbours'
//   unbiased variance (the record's own chance). A row with one neighbour
//   borrows the deviation of a random row with more.
// Returns the number of distinct matched records.
int64_t DrawMatchedNull(const NeighbourMatches& m,
                        const std::vector<double>& hit,
                        const std::vector<double>& rank,
                        const CalibrationOptions& options,
                        std::vector<double>& accuracy,
                        std::vector<double>& confidence) {
  const MatchedRows mr = RowsOf(m, rank);
  const std::vector<size_t>& matched = mr.matched;
  const std::vector<std::vector<size_t>>& rows = mr.rows;
  const std::vector<double>& mean_rank = mr.mean_rank;
  const std::vector<double>& scale = mr.scale;
  const std::vector<size_t>& wide = mr.wide;
  const size_t forget = rows.size();
  std::mt19937_64 rng(options.seed ^ 0x6e316768b0125ULL);
  std::poisson_distribution<int> poisson(1.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto uniform = [&rng](size_t n) {
    return std::uniform_int_distribution<size_t>(0, n - 1)(rng);
  };
  std::vector<double> weight(matched.size());
  const auto n = static_cast<double>(forget);
  accuracy.reserve(static_cast<size_t>(options.resamples));
  confidence.reserve(static_cast<size_t>(options.resamples));
  for (int b = 0; b < options.resamples; ++b) {
    for (double& w : weight) w = poisson(rng);
    // The centre: every row's neighbours under the weights, as one mean
    // (rows weighted alike where weights are 1; a per-row mean would
    // average the weights' effect away, and the interval came out about 7%
    // too narrow for a 40-record region). All weights 0: the plain mean.
    double w_sum = 0, r = 0;
    for (size_t i = 0; i < forget; ++i) {
      for (size_t s : rows[i]) {
        const double w = weight[s] / static_cast<double>(rows[i].size());
        w_sum += w;
        r += w * rank[matched[s]];
      }
    }
    double sum_correct = 0;
    double sum_confidence = 0;
    if (w_sum > 0) {
      sum_confidence = n * r / w_sum;
    } else {
      for (size_t i = 0; i < forget; ++i) sum_confidence += mean_rank[i];
    }
    for (size_t i = 0; i < forget; ++i) {
      // A hit: a coin of the row's weighted hit rate, smoothed as Jeffreys
      // does ((hits + 1/2) / (k + 1)), so that ten neighbours all right do
      // not make a single miss impossible.
      double row_w = 0, row_h = 0;
      for (size_t s : rows[i]) {
        row_w += weight[s];
        row_h += weight[s] * hit[matched[s]];
      }
      sum_correct += unit(rng) < (row_h + 0.5) / (row_w + 1) ? 1 : 0;
      // The confidence rank's deviation: this row's, or a wider row's for
      // a single neighbour.
      if (wide.empty()) continue;
      const size_t d = scale[i] > 0 ? i : wide[uniform(wide.size())];
      const size_t s = rows[d][uniform(rows[d].size())];
      sum_confidence += scale[d] * (rank[matched[s]] - mean_rank[d]);
    }
    accuracy.push_back(sum_correct / n);
    confidence.push_back(sum_confidence / n);
  }
  return static_cast<int64_t>(matched.size());
}

}  // namespace

Result<Calibration> CalibrateForgetSet(
    const RecordScores& forget, const RecordScores& validation,
    const std::vector<int64_t>& validation_subject,
    const CalibrationOptions& options, const NeighbourMatches* matches) {
  LETHE_CORE_RETURN_IF_ERROR(
      CheckInputs(forget, validation, validation_subject, options));
  const bool matched = matches != nullptr && matches->k > 0;
  if (matched) {
    LETHE_CORE_RETURN_IF_ERROR(
        CheckMatches(*matches, forget.losses.size(), validation.losses.size()));
  }
  Calibration c;
  c.forget_records = static_cast<int64_t>(forget.losses.size());
  c.validation_records = static_cast<int64_t>(validation.losses.size());
  c.alpha = options.alpha;
  c.margin = options.margin;
  const Ranks ranks(validation);
  std::vector<double> hit(validation.losses.size());
  std::vector<double> rank(validation.losses.size());
  for (size_t i = 0; i < hit.size(); ++i) {
    hit[i] = validation.correct[i] ? 1 : 0;
    rank[i] = ranks.Of(Phi(validation, i));
  }
  const std::vector<SubjectSums> subjects =
      BySubject(validation_subject, hit, rank);
  c.validation_subjects = static_cast<int64_t>(subjects.size());

  double forget_correct = 0;
  double forget_confidence = 0;
  for (size_t i = 0; i < forget.losses.size(); ++i) {
    forget_correct += forget.correct[i] ? 1 : 0;
    forget_confidence += ranks.Of(Phi(forget, i));
  }
  const auto n = static_cast<double>(c.forget_records);
  c.accuracy.value = forget_correct / n;
  c.confidence.value = forget_confidence / n;
  if (c.validation_records < kMinValidationRecords ||
      c.validation_subjects < kMinValidationSubjects) {
    return c;  // !available
  }
  std::vector<double> null_accuracy;
  std::vector<double> null_confidence;
  if (matched) {
    c.neighbours = matches->k;
    c.matched_records = DrawMatchedNull(*matches, hit, rank, options,
                                        null_accuracy, null_confidence);
    MatchingOffset(*matches, hit, rank, c);
    for (double& v : null_accuracy) v += c.offset_accuracy;
    for (double& v : null_confidence) v += c.offset_confidence;
  } else {
    DrawNull(subjects, c.forget_records, options, null_accuracy,
             null_confidence);
  }
  c.available = true;
  c.resamples = options.resamples;
  c.accuracy = Summarise(c.accuracy.value, std::move(null_accuracy),
                         options.alpha, options.margin);
  c.confidence = Summarise(c.confidence.value, std::move(null_confidence),
                           options.alpha, options.margin);
  return c;
}

double LookAlikeFloor(const CalibratedStat& before) {
  return before.lower -
         kLookAlikeFloorRadii * (before.upper - before.lower) / 2;
}

void ApplyLookAlikeFloor(const Calibration& before, Calibration& after) {
  if (!before.available || before.neighbours == 0 || !after.available ||
      after.neighbours == 0) {
    return;
  }
  for (auto [b, a] : {std::pair{&before.accuracy, &after.accuracy},
                      std::pair{&before.confidence, &after.confidence}}) {
    const double floor = LookAlikeFloor(*b);
    if (floor > a->lower) {
      a->lower = floor;
      a->floored = true;
    }
  }
}

double NormalQuantile(double p) {
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                 -2.759285104469687e+02, 1.383577518672690e+02,
                                 -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                 -1.556989798598866e+02, 6.680131188771972e+01,
                                 -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                 -2.400758277161838e+00, -2.549732539343734e+00,
                                 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                                 2.445134137142996e+00, 3.754408661907416e+00};
  constexpr double kLow = 0.02425;
  if (p < kLow) {
    const double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q +
            c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - kLow) return -NormalQuantile(1 - p);
  const double q = p - 0.5;
  const double r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) *
         q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

UtilityCheck CheckUtility(const std::vector<char>& before,
                          const std::vector<char>& after,
                          double max_drop_points, double alpha) {
  UtilityCheck u;
  u.allowed_points = max_drop_points;
  const size_t n = std::min(before.size(), after.size());
  if (n == 0) return u;
  double lost = 0;
  double gained = 0;
  for (size_t i = 0; i < n; ++i) {
    if (before[i] && !after[i]) lost += 1;
    if (!before[i] && after[i]) gained += 1;
  }
  const auto records = static_cast<double>(n);
  u.drop_points = 100.0 * (lost - gained) / records;
  if (alpha > 0 && alpha < 1) {
    u.allowed_points +=
        NormalQuantile(1 - alpha) * 100.0 * std::sqrt(lost + gained) / records;
  }
  return u;
}

}  // namespace lethe::core

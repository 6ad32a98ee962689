#include <algorithm>
#include <random>

#include "lethe/core/methods.h"

namespace lethe::core {

std::vector<int64_t> RetainSample(const Partition& p, int64_t n,
                                  uint64_t seed) {
  std::vector<int64_t> rows = p.retain;
  std::mt19937_64 rng(seed ^ 0x5eed5a3b1e5ULL);
  for (size_t i = rows.size(); i > 1; --i) {
    std::swap(rows[i - 1], rows[static_cast<size_t>(rng() % i)]);
  }
  if (static_cast<int64_t>(rows.size()) > n)
    rows.resize(static_cast<size_t>(n));
  std::sort(rows.begin(), rows.end());
  return rows;
}

Result<Measurement> Measure(torch::jit::Module& model, const DeviceData& data,
                            const Partition& p,
                            const std::vector<int64_t>& retain_sample) {
  LETHE_CORE_ASSIGN_OR_RETURN(EvalResult forget,
                              Evaluate(model, data, p.forget));
  LETHE_CORE_ASSIGN_OR_RETURN(EvalResult retain,
                              Evaluate(model, data, retain_sample));
  LETHE_CORE_ASSIGN_OR_RETURN(EvalResult test, Evaluate(model, data, p.test));
  LETHE_CORE_ASSIGN_OR_RETURN(EvalResult validation,
                              Evaluate(model, data, p.validation));
  Measurement out;
  Metrics& m = out.metrics;
  m.ua = 1.0 - forget.accuracy();
  m.ra = retain.accuracy();
  m.ta = test.accuracy();
  m.mia_auc = LossThresholdAuc(forget.losses, test.losses);
  m.va = validation.accuracy();
  out.forget = RecordScores{std::move(forget.losses), std::move(forget.hits),
                            std::move(forget.confidences)};
  out.validation =
      RecordScores{std::move(validation.losses), std::move(validation.hits),
                   std::move(validation.confidences)};
  return out;
}

Result<Metrics> ComputeMetrics(torch::jit::Module& model,
                               const DeviceData& data, const Partition& p,
                               const std::vector<int64_t>& retain_sample) {
  LETHE_CORE_ASSIGN_OR_RETURN(Measurement m,
                              Measure(model, data, p, retain_sample));
  return m.metrics;
}

}  // namespace lethe::core

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

Result<Metrics> ComputeMetrics(torch::jit::Module& model,
                               const DeviceData& data, const Partition& p,
                               const std::vector<int64_t>& retain_sample) {
  LETHE_CORE_ASSIGN_OR_RETURN(EvalResult forget,
                              Evaluate(model, data, p.forget));
  LETHE_CORE_ASSIGN_OR_RETURN(EvalResult retain,
                              Evaluate(model, data, retain_sample));
  LETHE_CORE_ASSIGN_OR_RETURN(EvalResult test, Evaluate(model, data, p.test));
  Metrics m;
  m.ua = 1.0 - forget.accuracy();
  m.ra = retain.accuracy();
  m.ta = test.accuracy();
  m.mia_auc = LossThresholdAuc(forget.losses, test.losses);
  return m;
}

}  // namespace lethe::core

#include "lethe/core/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace lethe::core {

double LossThresholdAuc(const std::vector<float>& member,
                        const std::vector<float>& nonmember) {
  if (member.empty() || nonmember.empty()) return 0.5;
  // Score = -loss; rank all scores ascending with ties averaged.
  std::vector<std::pair<float, bool>> all;
  all.reserve(member.size() + nonmember.size());
  // A NaN loss (a diverged model) counts as the worst possible score; left
  // as NaN it would break the ordering and the tie grouping below.
  auto score = [](float l) {
    return std::isnan(l) ? -std::numeric_limits<float>::infinity() : -l;
  };
  for (float l : member) all.emplace_back(score(l), true);
  for (float l : nonmember) all.emplace_back(score(l), false);
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  double member_rank_sum = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k) {
      if (all[k].second) member_rank_sum += avg_rank;
    }
    i = j;
  }
  double m = static_cast<double>(member.size());
  double n = static_cast<double>(nonmember.size());
  return (member_rank_sum - m * (m + 1) / 2) / (m * n);
}

double GapPoints(const Metrics& a, const Metrics& b) {
  return 100.0 *
         (std::abs(a.ua - b.ua) + std::abs(a.ra - b.ra) +
          std::abs(a.ta - b.ta) + std::abs(a.mia_auc - b.mia_auc)) /
         4.0;
}

}  // namespace lethe::core

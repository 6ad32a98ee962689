// Verification metrics of an unlearned model (Kurmanji et al.'s and Fan et
// al.'s evaluation): all fractions in [0, 1]. Torch-free.
#ifndef LETHE_CORE_METRICS_H_
#define LETHE_CORE_METRICS_H_

#include <vector>

namespace lethe::core {

struct Metrics {
  double ua = 0;       // unlearning accuracy: 1 - accuracy on the forget set
  double ra = 0;       // accuracy on a fixed sample of the retain set
  double ta = 0;       // accuracy on the test split
  double mia_auc = 0;  // loss-threshold membership inference, forget vs test
  double va = 0;       // accuracy on the validation split (the gate's)
};

// ROC AUC of the attack "lower loss means member": the probability that a
// random member (forget) loss is below a random non-member (test) loss, ties
// counting one half. Exact, via average ranks (Mann-Whitney U). 0.5 means the
// forget set looks unseen; 0.5 if either side is empty.
double LossThresholdAuc(const std::vector<float>& member_losses,
                        const std::vector<float>& nonmember_losses);

// Mean absolute difference of ua, ra, ta and mia_auc, in points (x100).
double GapPoints(const Metrics& a, const Metrics& b);

}  // namespace lethe::core

#endif  // LETHE_CORE_METRICS_H_

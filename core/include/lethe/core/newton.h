// Certified removal (Guo, Goldstein, Hannun, van der Maaten, ICML 2020) for
// L2-regularised logistic regression, one-vs-rest over the classes.
//
// Training minimises, per class k with y in {0, 1},
//   L(w_k; D) = sum_i softplus(w_k.x_i) - y_ik w_k.x_i + lambda n/2 |w_k|^2
//               + b_k.w_k,     x_i = [features, 1], b ~ N(0, sigma^2)
// to its optimum by Newton's method in float64. Removing the m records F
// takes one Newton step  w- = w* + H'^-1 Delta,  Delta = lambda m w* +
// sum_{i in F} grad loss_i(w*), H' the Hessian of L(.; D \ F) at w*. Guo et
// al.'s data-dependent bound (Corollary 1) on the gradient residual,
//   |grad L(w-; D \ F)| <= gamma |X'|_2 |H'^-1 Delta| |X' H'^-1 Delta|,
// gamma = 1/4, is summed over removals; while the sum stays below
// sigma * epsilon / sqrt(2 ln(1.5 / delta)) the model is
// (epsilon, delta)-indistinguishable from retraining (Theorem 3). Beyond
// that the answer is "retrain needed".
//
// Scope: models whose parameters are one weight [K, d] and one bias [K] and
// whose forward is flatten + linear (lethe's logreg, or a user's nn.Linear;
// checked on a few rows).
// A linear head on frozen features is not supported yet. Cost per removal:
// K Hessians over the retained data, O(K n d^2), and K solves, O(K d^3).
// Torch-level header.
#ifndef LETHE_CORE_NEWTON_H_
#define LETHE_CORE_NEWTON_H_

#include <torch/csrc/jit/api/module.h>

#include <string>
#include <string_view>
#include <vector>

#include "lethe/core/dataset.h"
#include "lethe/core/policy.h"
#include "lethe/core/status.h"
#include "lethe/core/train.h"

namespace lethe::core {

// What must persist with a certified model between runs.
struct NewtonState {
  NewtonParams params;
  uint64_t noise_seed = 0;      // draws b
  double cumulative_bound = 0;  // sum of the residual bounds so far
  int64_t removals = 0;         // records removed since training
};
std::string SerializeNewtonState(const NewtonState& state);
Result<NewtonState> ParseNewtonState(std::string_view text);

// sigma * epsilon / sqrt(2 ln(1.5 / delta)).
double NewtonBudget(const NewtonParams& params);

// Trains `model` (see Scope) on `rows` to the optimum of the perturbed
// objective. INVALID_ARGUMENT if the model is not linear.
Result<NewtonState> TrainCertified(torch::jit::Module& model,
                                   const DeviceData& data,
                                   const std::vector<int64_t>& rows,
                                   const NewtonParams& params,
                                   uint64_t noise_seed);

struct NewtonRemoval {
  bool retrain_needed = false;  // then `model` is empty and state unchanged
  torch::jit::Module model;
  double bound = 0;             // this removal's residual bound
  double budget = 0;
  NewtonState state;            // updated cumulative bound and removals
};

// One Newton step removing partition.forget from a model trained on
// forget + retain.
Result<NewtonRemoval> NewtonRemove(const torch::jit::Module& original,
                                   const DeviceData& data,
                                   const Partition& partition,
                                   const NewtonState& state);

// |grad L(w; rows)| of the perturbed objective at the model's weights.
Result<double> GradientResidual(const torch::jit::Module& model,
                                const DeviceData& data,
                                const std::vector<int64_t>& rows,
                                const NewtonState& state);

}  // namespace lethe::core

#endif  // LETHE_CORE_NEWTON_H_

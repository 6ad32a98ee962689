// Certified removal (Guo, Goldstein, Hannun, van der Maaten, ICML 2020) for
// L2-regularised logistic regression, one-vs-rest over the classes.
//
// Training minimises, per class k with y in {0, 1},
//   L(w_k; D) = sum_i softplus(w_k.x_i) - y_ik w_k.x_i + lambda n/2 |w_k|^2
//               + b_k.w_k,     x_i = [features, 1], b ~ N(0, sigma^2)
// to its optimum by Newton's method in float64. Removing the m records F
// takes one Newton step  w- = w + H'^-1 Delta,  Delta = lambda m w +
// sum_{i in F} grad loss_i(w), H' the Hessian of L(.; D \ F). The step's
// gradient residual is bounded (Guo et al., Corollary 1, generalised):
//   |grad L(w-; D \ F)| <= gamma R |X'|_2 |(|v_k| (|X' v_k| + |X' (w_k - w_H,k)|))_k|,
// v = H'^-1 Delta, gamma = 1/4, R = max_i |x_i| (1 for Guo et al.'s unit-norm
// rows), w_H where H' was taken. The bounds are summed over removals; while
// the sum stays below sigma * epsilon / sqrt(2 ln(1.5 / delta)) the model is
// (epsilon, delta)-indistinguishable from retraining (Theorem 3). Beyond
// that the answer is "retrain needed".
//
// Models: a linear model (parameters one weight [K, d] and one bias [K],
// forward = linear(flatten(x)): lethe's logreg, or a user's nn.Linear), or a
// linear head on frozen features (an `embed` method computed from buffers
// only, forward = linear(embed(x)): lethe's rf_logreg, or a user's module
// exposing `embed`); the forward is checked on a few rows.
//
// Cost. Without a cache: H' over the retained data, O(K n d^2), the cost of
// one Newton iteration of training. With the cache that training leaves
// when it fits NewtonParams.max_cache_bytes (K Hessians and the Gram matrix
// at the optimum w_H, in the state): H' = H - sum_F s_i x_i x_i^T - lambda m I
// and X'^T X' = X^T X - X_F^T X_F, O(K m d^2 + K d^3), no pass over the
// retained data; w_H stays where training left it, and the bound's drift term
// pays for the Hessian's age until a retrain refreshes it.
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
  double max_row_norm = 0;      // R: max |x_i| over the training rows
  // The cache (all float64 on the CPU, or all undefined): per-class Hessians
  // [K, d+1, d+1] of L(.; data the model now stands for) at hessian_at
  // [K, d+1], and the Gram matrix X^T X [d+1, d+1] of that data.
  at::Tensor hessians, hessian_at, gram;
  bool has_cache() const { return hessians.defined(); }
};
// "lethe-newton-v2": a text header, a blank line, then the cache's float64
// values (host byte order). ParseNewtonState also reads v1 (no cache).
std::string SerializeNewtonState(const NewtonState& state);
Result<NewtonState> ParseNewtonState(std::string_view bytes);

// sigma * epsilon / sqrt(2 ln(1.5 / delta)).
double NewtonBudget(const NewtonParams& params);

// Trains `model` (see Models) on `rows` to the optimum of the perturbed
// objective, and fills the cache when it fits params.max_cache_bytes.
// INVALID_ARGUMENT if the model is neither linear nor a linear head.
Result<NewtonState> TrainCertified(torch::jit::Module& model,
                                   const DeviceData& data,
                                   const std::vector<int64_t>& rows,
                                   const NewtonParams& params,
                                   uint64_t noise_seed);

struct NewtonRemoval {
  bool retrain_needed = false;  // then `model` is empty and state unchanged
  torch::jit::Module model;
  double bound = 0;             // this removal's residual bound
  // |grad L(w-; D \ F)|, when measured (see NewtonRemove); then the state
  // carries min(cumulative + bound, residual).
  bool residual_measured = false;
  double residual = 0;
  double budget = 0;
  NewtonState state;            // updated cumulative bound and removals
};

// One Newton step removing partition.forget from a model trained on
// forget + retain. The certificate needs |grad L(w-; D \ F)| <= budget; the
// summed bounds stand in for it. When they would exceed the budget (and
// params.measure_residual), or when the step already passed over the kept
// data (no cache), the residual itself is measured (one forward over the
// kept rows) and, being smaller, carried instead: removals go on until the
// measured residual, not the bounds, reaches the budget.
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

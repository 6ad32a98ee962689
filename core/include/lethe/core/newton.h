// Certified removal (Guo, Goldstein, Hannun, van der Maaten, ICML 2020) for
// L2-regularised logistic regression, one-vs-rest over the classes.
//
// Training minimises, per class k with y in {0, 1},
//   L(w_k; D) = sum_i softplus(w_k.x_i) - y_ik w_k.x_i + lambda n/2 |w_k|^2
//               + b_k.w_k,     x_i = [features, 1], b ~ N(0, sigma^2)
// to its optimum by Newton's method in float64 (b secret: see The noise).
// Removing the m records F takes one Newton step
//   w- = w + H'^-1 Delta,  Delta = lambda m w + sum_{i in F} grad loss_i(w),
// H' the Hessian of L(.; D \ F). The step's
// gradient residual is bounded (Guo et al., Corollary 1, generalised):
//   |grad L(w-; D \ F)| <= gamma R |X'|_2 |(|v_k| (|X' v_k| + |X' (w_k -
//   w_H,k)|))_k|,
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
//
// The noise. The guarantee holds against an observer who does not know b:
// one who does can simulate the removal of each candidate and match the
// published weights (tests/core/newton_attack_test.cc). So b comes from
// getrandom(2), independent of the recipe seed and every other public field,
// and lives only in TrainCertified's frame. Removal never needs it: the
// residual it carries is a bound on |grad L(w; D)| for the current weights,
// and a measured step adds |grad L(w-; D') - grad L(w; D)|, where b cancels.
// b is still a function of the optimum and its data (b = -grad L_0(w*; D),
// L_0 the objective without b): whoever holds the weights before a removal
// (a published version, or the cache's w_H) and the data knows b, and can
// recompute the step for each candidate without it. No guarantee covers that
// observer (docs/engine.md, "newton").
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

// What must persist with a certified model between runs. Not b (see The
// noise); the cache's w_H determines it with the data, so the state is for
// workers only, as the weights before a removal are.
struct NewtonState {
  NewtonParams params;
  // Read from a state older than v3: b was drawn from the recipe seed, which
  // is public, so the model is not certified and NewtonRemove refuses it
  // (the engine's chain goes on to retrain, which draws a secret b).
  bool public_noise = false;
  double cumulative_bound = 0;  // bounds |grad L(w; D)| at the current weights
  int64_t removals = 0;         // records removed since training
  int64_t rows = 0;             // |D|: the records the model now stands for
  double max_row_norm = 0;      // R: max |x_i| over the training rows
  // The cache (all float64 on the CPU, or all undefined): per-class Hessians
  // [K, d+1, d+1] of L(.; data the model now stands for) at hessian_at
  // [K, d+1], and the Gram matrix X^T X [d+1, d+1] of that data.
  at::Tensor hessians, hessian_at, gram;
  bool has_cache() const { return hessians.defined(); }
};
// "lethe-newton-v3": a text header, a blank line, then the cache's float64
// values (host byte order). ParseNewtonState also reads v2 and v1 (no cache),
// whose noise_seed line it drops and flags as public_noise.
std::string SerializeNewtonState(const NewtonState& state);
Result<NewtonState> ParseNewtonState(std::string_view bytes);

// sigma * epsilon / sqrt(2 ln(1.5 / delta)).
double NewtonBudget(const NewtonParams& params);

// Trains `model` (see Models) on `rows` to the optimum of the perturbed
// objective with a fresh secret b ~ N(0, sigma^2 I) [K, d + 1] (float64, CPU)
// from getrandom(2), and fills the cache when it fits params.max_cache_bytes.
// `noise`, when given, receives b: for tests and benchmarks that measure the
// true residual (GradientResidual); the engine passes none. INVALID_ARGUMENT
// if the model is neither linear nor a linear head; INTERNAL if the kernel
// gives no random bytes.
Result<NewtonState> TrainCertified(torch::jit::Module& model,
                                   const DeviceData& data,
                                   const std::vector<int64_t>& rows,
                                   const NewtonParams& params,
                                   at::Tensor* noise = nullptr);

// The same with a b of the caller's ([K, d + 1]). Certifies nothing unless b
// is secret and N(0, sigma^2 I): for tests, and for simulating an observer
// who knows or guesses b.
Result<NewtonState> TrainCertifiedWithNoise(torch::jit::Module& model,
                                            const DeviceData& data,
                                            const std::vector<int64_t>& rows,
                                            const NewtonParams& params,
                                            const at::Tensor& noise);

struct NewtonRemoval {
  bool retrain_needed = false;  // then `model` is empty and state unchanged
  torch::jit::Module model;
  double bound = 0;  // this removal's residual bound
  // cumulative + |grad L(w-; D \ F) - grad L(w; D)|, when measured (see
  // NewtonRemove): the step's change of the gradient taken instead of
  // bounded; then the state carries min(cumulative + bound, measured_bound).
  bool measured = false;
  double measured_bound = 0;
  double budget = 0;
  NewtonState state;  // updated cumulative bound and removals
};

// One Newton step removing partition.forget from a model trained on
// forget + retain. The certificate needs |grad L(w-; D \ F)| <= budget; the
// summed bounds stand in for it. When they would exceed the budget (and
// params.measure_residual), or when the step already passed over the kept
// data (no cache), the step's change of the gradient is measured (two
// forwards over the kept rows; b cancels, so none is needed) and the
// cumulative bound plus it, never more than plus the step's bound, carried
// instead: removals go on until the measured changes reach the budget.
// FAILED_PRECONDITION ("retrain needed") for a state with public_noise, or
// when forget + retain are not the state's rows records (data added since
// training, which the carried bound knows nothing of): such a model must be
// retrained (TrainCertified), not stepped.
Result<NewtonRemoval> NewtonRemove(const torch::jit::Module& original,
                                   const DeviceData& data,
                                   const Partition& partition,
                                   const NewtonState& state);

// |grad L(w; rows)| of the objective perturbed by `noise` (b, as
// TrainCertified handed it out) with regulariser lambda, at the model's
// weights.
Result<double> GradientResidual(const torch::jit::Module& model,
                                const DeviceData& data,
                                const std::vector<int64_t>& rows, double lambda,
                                const at::Tensor& noise);

}  // namespace lethe::core

#endif  // LETHE_CORE_NEWTON_H_

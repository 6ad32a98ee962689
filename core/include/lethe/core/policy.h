// The unlearning methods lethe offers, their hyperparameters, and the policy
// that chains them. Torch-free.
//
// Guarantee classes (docs/compliance.md says what each lets a certificate
// claim):
// - `exact`: the result is what lethe's training of this model, from its
//   seed, gives without the forgotten data: every parameter re-drawn, every
//   buffer reset or a constant lethe built, and the recipe the one that
//   trained the model (lethe trained its first version: SISA, certified
//   training, or a built-in architecture trained by a worker).
// - `retrained`: parameters re-drawn and trained without the forgotten data,
//   every buffer reset or declared data-free by the model
//   (model.h, kDataFreeBuffersAttr), but the model was registered with
//   weights trained elsewhere: nothing of the forgotten data remains, yet the
//   result is lethe's recipe, not a draw from the registered training.
// - `parameters_retrained`: as `retrained`, but buffers the model did not
//   declare data-free were kept from the previous version (the report names
//   them); if computed from training data they may still hold it.
// - `certified` (Guo et al.: indistinguishable from retraining up to
//   (epsilon, delta)), `approximate` (no guarantee; measured by the
//   verification gate). docs/engine.md gives sources and costs.
#ifndef LETHE_CORE_POLICY_H_
#define LETHE_CORE_POLICY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "lethe/core/recipe.h"
#include "lethe/core/status.h"

namespace lethe::core {

enum class Method {
  kRetrain,      // exact
  kSisa,         // exact
  kNewton,       // certified
  kFinetune,     // approximate
  kNegGradPlus,  // approximate
  kScrub,        // approximate
  kRandomLabel,  // approximate
  kSalun,        // approximate
};
enum class Guarantee {
  kExact,
  kRetrained,
  kParametersRetrained,
  kCertified,
  kApproximate
};

const char* MethodName(Method m);  // "retrain", "neggrad_plus", ...
Result<Method> ParseMethod(const std::string& name);
// The method's class on a model lethe trained (retrain and sisa exact,
// newton certified, the rest approximate); the engine's report may name a
// weaker one for a retrain (see above).
Guarantee GuaranteeOf(Method m);
const char* GuaranteeName(Guarantee g);  // "exact", "certified", ...

// Approximate methods reuse the model's Recipe for optimiser, momentum and
// batch size; these override learning rate and epochs. Defaults were tuned on
// the poisoned-data test scenario (tests/core/methods_test.cc: 2,000
// Fashion-MNIST images, 80 epochs, 10% of subjects mislabelled), where each
// closes 55-90% of the gap to retraining; docs/engine.md has the figures.

// Fine-tune on the retain set only ("catastrophic forgetting"), with the
// learning rate decayed linearly to 0. Approximate; cost epochs x |retain|.
// With `warmup`, the rate rises linearly from 0 over that fraction of the
// steps first: from a trained model, a rate of 0.15-0.2 applied at once made
// the memorised benchmark scenarios diverge or collapse to one class
// (docs/benchmarks.md). With `max_grad_norm` (gradient clipping) rates of
// 0.3-0.4 stay stable without a warm-up; on the memorised scenarios a
// clipped fine-tune followed by the head re-fit (HeadRefitParams) closes the
// most of the gap at a tenth of a retrain's cost.
struct FinetuneParams {
  int epochs = 5;
  double lr = 0.1;
  double warmup = 0.0;         // fraction of the steps, [0, 1)
  double max_grad_norm = 0.0;  // Recipe::max_grad_norm (0: no clipping)
};

// NegGrad+ (Kurmanji et al., NeurIPS 2023, appendix): per step
// beta * CE(retain batch) - (1 - beta) * CE(forget batch). Approximate; cost
// epochs x |retain| (two forward passes per step).
struct NegGradPlusParams {
  int epochs = 1;
  double lr = 0.01;
  double beta = 0.9;
};

// SCRUB (Kurmanji et al., NeurIPS 2023): the student starts as the original
// (the teacher). Each epoch, while epoch < max_epochs, one max-pass over the
// forget set maximising KL(teacher || student); then one min-pass over the
// retain set minimising alpha * KL + gamma * CE. Constant learning rate.
// Approximate; cost max_epochs x |forget| + epochs x |retain|, each step with
// a teacher forward pass. Diverges at larger rates (caught, escalated).
struct ScrubParams {
  int epochs = 8;
  int max_epochs = 3;
  double lr = 0.02;
  double alpha = 1.0;
  double gamma = 1.0;
  double temperature = 4.0;
};

// Random labels (Graves et al., AAAI 2021 "Amnesiac ML"; the RL baseline of
// Fan et al.): one pass over forget (each record relabelled with a random
// wrong class) and retain (true labels), mixed. Approximate; cost
// epochs x (|forget| + |retain|).
struct RandomLabelParams {
  int epochs = 1;
  double lr = 0.02;
};

// SalUn (Fan et al., ICLR 2024): random labels, updating only the salient
// weights: the fraction `salient` of weights with the largest forget-loss
// gradient magnitude at the original model. Approximate; cost one gradient
// pass over the forget set plus random_label's.
struct SalunParams {
  int epochs = 1;
  double lr = 0.02;
  double salient = 0.5;
};

// Certified removal (Guo et al., ICML 2020) for L2-regularised logistic
// regression (one-vs-rest per class). Training minimises
//   sum_i loss_i + lambda * n / 2 * |w|^2 + b . w,  b ~ N(0, sigma^2)
// and removals stay (epsilon, delta)-certified while the cumulative
// gradient-residual bound stays below sigma * epsilon / sqrt(2 ln(1.5/delta)).
// Certified; cost per removal O(K n d^2 + K d^3), or O(K m d^2 + K d^3) with
// the cache below (m removed records). See newton.h.
// Defaults: on 2,000 Fashion-MNIST images (14x14 pooled) lambda 0.1 gives
// test accuracy ~0.68 and one Newton step cuts the gradient residual ~180x
// for 40 removals; smaller lambda fits better (0.80 at 1e-3) but the step is
// less exact and the bound far larger (docs/engine.md has the table).
struct NewtonParams {
  double lambda = 0.1;
  double sigma = 1.0;
  double epsilon = 1.0;
  double delta = 1e-4;
  int max_iterations = 30;  // Newton iterations when training
  // Keep the Hessians at the optimum in the state when they take at most
  // this many bytes (K (d+1)^2 x 8 and the Gram matrix): removals then cost
  // O(K m d^2) instead of a pass over the retained data. 16 MiB holds
  // rf_logreg with 256 features and 10 classes (5.3 MB), not logreg on
  // 784 raw pixels (49 MB).
  int64_t max_cache_bytes = 16 << 20;
  // Before answering "retrain needed", measure the step's true gradient
  // residual (a forward over the kept data: ~0.3 s for rf_logreg on 60,000
  // images, against ~15 s to retrain) and accept when it fits the budget.
  bool measure_residual = true;
};

// SISA (Bourtoule et al., IEEE S&P 2021). Exact; training costs about one
// training split over the shards, forgetting retrains only the affected
// shards' stages. See sisa.h.
struct SisaParams {
  int shards = 8;
  int slices = 4;
};

// Head re-fit, after any approximate method (epochs > 0): the trunk is
// frozen, its outputs on the retain set computed once, and the head trained
// on them for `epochs` at `lr` decayed linearly to 0, batches of `batch` (0:
// the recipe's). CF-k of Goel et al. ("Towards adversarial evaluation of
// machine unlearning", 2022), after the method. On memorised data a method
// strong enough to erase the forget set's memorisation (held mostly in the
// first layer: a head re-trained from scratch on the original trunk still
// fit the forgotten images, UA 1.6% against retraining's 13.5%) also erases
// part of the retain set's; the re-fit restores it through the head alone (a
// head epoch costs ~1/4 of a full one on the benchmark's MLP). Needs a model
// with trunk and head (model.h); FAILED_PRECONDITION otherwise. Cost:
// epochs x |retain| through the head only.
struct HeadRefitParams {
  int epochs = 0;
  double lr = 0.1;
  int64_t batch = 0;
};

struct MethodParams {
  FinetuneParams finetune;
  NegGradPlusParams neggrad_plus;
  ScrubParams scrub;
  RandomLabelParams random_label;
  SalunParams salun;
  NewtonParams newton;
  HeadRefitParams head_refit;
};

// Training work of an approximate method relative to retraining with
// `recipe` on the retain set: records passed forward and backward, over
// recipe.epochs x retain (finetune: epochs x retain; neggrad_plus: 2 x epochs
// x retain; scrub: epochs x retain + max_epochs x forget; random_label and
// salun: epochs x (retain + forget)), plus head_refit.epochs x retain (a head
// epoch counted as a full one: an upper bound). 0 for other methods.
double EstimatedCostFraction(Method m, const MethodParams& params,
                             const Recipe& recipe, int64_t retain,
                             int64_t forget);

// The parameters of round `round` (0-based) of an adaptive method: m's own
// set to 1, 1, 2, 4, ... epochs (SCRUB: max-passes in the first max_epochs
// rounds only), the rest as given. Other methods' parameters are returned as
// they are.
MethodParams AdaptiveRound(Method m, const MethodParams& params, int round);

// What a model's owner accepts. The chain is tried in order; a method whose
// result fails the gate (or that fails) escalates to the next; an exact method
// ends the chain (it is accepted without the gate).
//
// The gate (docs/engine.md "The gate"), for certified and approximate
// results:
// - utility: accuracy on the validation split (Partition::validation)
//   dropped by at most max_test_acc_drop points from the original model's;
// - forgetting, calibrated (calibration.h): the forget set's accuracy and
//   mean confidence each lie within the interval that groups of never-seen
//   validation subjects of the same size fall in, two-sided, at
//   significance gate_alpha. Without enough validation data (fewer than
//   kMinValidationRecords records or kMinValidationSubjects subjects) no
//   approximate result is accepted; a certified one, which has its own
//   proof, is checked for utility only.
// - optional fixed thresholds, off by default: the population MIA AUC
//   (forget vs test) at most max_mia_auc, and forget accuracy above test
//   accuracy by at most max_forget_acc_excess points. Fixed thresholds
//   cannot tell forgetting from noise on small forget sets: exact retrains
//   of single 20-record subjects scored MIA AUC 0.40-0.70 (issue 16).
//
// Adaptive strength: with adaptive_budget > 0 an approximate method runs in
// rounds of 1, 1, 2, 4, ... epochs (AdaptiveRound; its other
// hyperparameters as configured), each round continuing from the last one's
// result, the gate checked after every round (so after 1, 2, 4, 8, ...
// epochs in all); it stops at the first accepted result, or escalates when
// the next round would take the method's estimated cost
// (EstimatedCostFraction, per round) above adaptive_budget of a retrain. The
// epochs configured for the method then do not apply. With adaptive_budget 0
// the method runs once as configured and max_cost_fraction decides whether it
// runs at all.
struct Policy {
  std::vector<Method> chain = {Method::kFinetune, Method::kRetrain};
  double max_test_acc_drop = 1.5;  // points, on the validation split
  // The calibrated check's significance, in (0, 0.5]; 0 turns the check off
  // (for tests of the other checks: the API does not offer it).
  double gate_alpha = 0.01;
  // The calibrated intervals' equivalence margin (calibration.h), in
  // [0, 0.5]: accuracy as a fraction and confidence rank alike. Chosen on
  // the benchmark's tuning people (docs/benchmarks.md "The calibrated
  // gate").
  double gate_margin = 0.02;
  int gate_resamples = 4000;  // null-distribution draws, >= 100
  // The calibrated check's null: k > 0, each forget record against its k
  // nearest validation records of its label (calibration.h, the
  // difficulty-matched null), in [2, 1000] (one neighbour would leave a
  // record's own chance unknown); 0, groups of whole validation subjects.
  // docs/benchmarks.md "The difficulty-matched null" measured both; k = 10
  // was fixed before the first run, not tuned.
  int gate_neighbours = 10;
  double max_mia_auc = 1.0;              // 1: off
  double max_forget_acc_excess = 100.0;  // points; 100: off
  // Cost of an adaptive method's rounds together, as a fraction of a
  // retrain; 0: not adaptive.
  double adaptive_budget = 0.25;
  int max_rounds = 32;  // rounds of one adaptive method, at most
  // Not adaptive (adaptive_budget 0): an approximate method whose estimated
  // cost (EstimatedCostFraction) is more than this fraction of retraining's
  // is skipped when an exact method follows it in the chain: it would give up
  // exactness for little time, and the gate cannot see every gap to retraining
  // (on the benchmark's poison scenario finetune, 5/8 of a retrain, passed it
  // 0.33 points from retraining against a noise floor of 0.05). > 0; large
  // values turn it off.
  double max_cost_fraction = 0.5;
  // Seconds for the non-exact methods of the chain together (0 = none); once
  // spent, the chain skips ahead to its first exact method.
  double time_budget_s = 0;
  // Also retrain (with the model's recipe) for reference and report the gap.
  bool reference_retrain = false;
  int64_t retain_sample = 2000;  // retain records RA is measured on
  uint64_t seed = 0;             // for methods' random draws
  MethodParams params;
};

}  // namespace lethe::core

#endif  // LETHE_CORE_POLICY_H_

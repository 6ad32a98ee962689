// The unlearning methods on TorchScript models, and the verification metrics.
// Each takes the original model (never modified) and the union of the forget
// sets of a batch of requests (Partition::forget), and returns a new model or
// an error: ABORTED when it diverged (loss or weights not finite, or the loss
// beyond TrainControl::max_abs_loss), DEADLINE_EXCEEDED when the time budget
// ran out. A failed method never yields a model.
//
// Sources, hyperparameters and costs: policy.h and docs/engine.md.
// Newton: newton.h; SISA: sisa.h. Torch-level header.
#ifndef LETHE_CORE_METHODS_H_
#define LETHE_CORE_METHODS_H_

#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <vector>

#include "lethe/core/calibration.h"
#include "lethe/core/dataset.h"
#include "lethe/core/metrics.h"
#include "lethe/core/policy.h"
#include "lethe/core/recipe.h"
#include "lethe/core/status.h"
#include "lethe/core/train.h"

namespace lethe::core {

struct MethodContext {
  const DeviceData& data;
  const Partition& partition;
  const Recipe& recipe;  // how the original was trained
  const MethodParams& params;
  TrainControl control;
  uint64_t seed = 0;
};

// Exact. Re-initialises the model (ReinitializeModel with recipe.seed) and
// trains it on the retain set with the recipe. Cost: one full training.
Result<torch::jit::Module> Retrain(const torch::jit::Module& original,
                                   const MethodContext& ctx);

// Approximate methods.
Result<torch::jit::Module> Finetune(const torch::jit::Module& original,
                                    const MethodContext& ctx);
Result<torch::jit::Module> NegGradPlus(const torch::jit::Module& original,
                                       const MethodContext& ctx);
Result<torch::jit::Module> Scrub(const torch::jit::Module& original,
                                 const MethodContext& ctx);
Result<torch::jit::Module> RandomLabel(const torch::jit::Module& original,
                                       const MethodContext& ctx);
Result<torch::jit::Module> Salun(const torch::jit::Module& original,
                                 const MethodContext& ctx);

// The first n retain rows in a seeded shuffle (all if fewer): the fixed
// sample RA is measured on, the same for every model of a run.
std::vector<int64_t> RetainSample(const Partition& p, int64_t n, uint64_t seed);

// The metrics, and the per-record scores the calibrated gate needs.
struct Measurement {
  Metrics metrics;
  RecordScores forget;
  RecordScores validation;  // in Partition::validation order
};
Result<Measurement> Measure(torch::jit::Module& model, const DeviceData& data,
                            const Partition& p,
                            const std::vector<int64_t>& retain_sample);
Result<Metrics> ComputeMetrics(torch::jit::Module& model,
                               const DeviceData& data, const Partition& p,
                               const std::vector<int64_t>& retain_sample);

// The difficulty-matched null's neighbours (calibration.h): for each of the
// `forget` rows, its k nearest `validation` rows with the same label, by
// Euclidean distance between the records as the model takes them
// (AsModelInput, flattened), as positions in `validation`. A label with
// fewer than k validation records gives what it has; a label with none,
// the nearest of any label. k 0 or no validation row: k 0, no matches.
// With `forget_subject` and `validation_subject` (one per row each), a
// validation row of the same subject is never a neighbour (matching
// validation records among the other validation people). Costs forget x
// validation x features multiply-adds, once per request.
Result<NeighbourMatches> MatchNeighbours(
    const DeviceData& data, const std::vector<int64_t>& forget,
    const std::vector<int64_t>& validation, int64_t k,
    const std::vector<int64_t>& forget_subject = {},
    const std::vector<int64_t>& validation_subject = {});

// MatchNeighbours for the difficulty-matched null of one request: the
// forget rows' matches, and up to `reference` validation records (a seeded
// draw) matched among the other validation people, for the matching's own
// offset (NeighbourMatches::reference). `validation_subject`: per
// validation row.
Result<NeighbourMatches> MatchForNull(
    const DeviceData& data, const std::vector<int64_t>& forget,
    const std::vector<int64_t>& validation,
    const std::vector<int64_t>& validation_subject, int64_t k,
    int64_t reference, uint64_t seed);

}  // namespace lethe::core

#endif  // LETHE_CORE_METHODS_H_

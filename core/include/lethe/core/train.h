// Training and evaluation of a TorchScript model through autograd on its
// parameters. On the CPU a run is deterministic for a given Recipe::seed:
// batches are drawn by lethe's own generator (mt19937_64, Fisher-Yates), the
// optimisers are lethe's own (same update rules as torch.optim.SGD / Adam),
// and nothing else draws random numbers.
//
// Torch-level header.
#ifndef LETHE_CORE_TRAIN_H_
#define LETHE_CORE_TRAIN_H_

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include <chrono>
#include <functional>
#include <vector>

#include "lethe/core/dataset.h"
#include "lethe/core/recipe.h"
#include "lethe/core/runtime.h"
#include "lethe/core/status.h"

namespace lethe::core {

// A dataset's tensors on the run's device, moved once per run (on the CPU
// they are the dataset's own tensors, not copies). `features` stay as
// stored (one byte a feature for uint8 data, on a GPU too); Rows and First
// give the model's float32 input for some of them.
struct DeviceData {
  at::Tensor features;
  at::Tensor labels;
  at::Device device = at::Device(at::kCPU);

  at::Tensor Rows(const at::Tensor& rows) const {
    return AsModelInput(features.index_select(0, rows));
  }
  at::Tensor First(int64_t n) const {
    return AsModelInput(features.narrow(0, 0, n));
  }
};
Result<DeviceData> ToDevice(const Dataset& data, const Device& device);
at::Device ToTorchDevice(const Device& device);

using Clock = std::chrono::steady_clock;

struct TrainControl {
  Clock::time_point deadline = Clock::time_point::max();
  // A step whose loss is not finite or exceeds this in magnitude aborts the
  // run (ABORTED, "diverged ..."): a diverging method never yields a model.
  double max_abs_loss = 1e4;
  // If set, one 0/1 mask per parameter (same order as module.parameters()):
  // gradients are multiplied by it before the step (SalUn).
  const std::vector<at::Tensor>* grad_mask = nullptr;
};

// Loss of one batch, given the batch's row indices (int64, on the device).
using BatchLoss = std::function<at::Tensor(const at::Tensor& rows)>;

// The learning rate of step `step` (0-based) of `total`: a linear warm-up
// from lr / (w + 1) to lr over the first w = floor(warmup_fraction * total)
// steps, then lr (constant) or lr decayed linearly to 0 over the rest.
double ScheduledLearningRate(const Recipe& recipe, int64_t step, int64_t total);

// A run of `count` steps (batches) instead of recipe.epochs, the last epoch
// cut short, that is steps offset..offset+count-1 of a schedule of `total`
// steps (total 0: count): SISA's stages, fractional epochs each, one
// learning-rate schedule over a shard's stages.
struct StepRange {
  int64_t count = 0;  // 0: recipe.epochs whole epochs
  int64_t offset = 0;
  int64_t total = 0;
};

// Epochs over `rows`, shuffled per epoch, batches of recipe.batch_size, the
// recipe's optimiser and schedule (ScheduledLearningRate, per step). The module
// must already be on the device of the rows.
Status RunTrainingLoop(torch::jit::Module& module,
                       const std::vector<int64_t>& rows, const Recipe& recipe,
                       const TrainControl& control, const BatchLoss& loss,
                       const StepRange& steps = {});

// Cross-entropy training on the stored labels of `rows`.
Status TrainModel(torch::jit::Module& module, const DeviceData& data,
                  const std::vector<int64_t>& rows, const Recipe& recipe,
                  const TrainControl& control = {},
                  const StepRange& steps = {});

at::Tensor Forward(torch::jit::Module& module, const at::Tensor& x);

struct EvalResult {
  int64_t correct = 0;
  std::vector<float> losses;  // per-sample cross-entropy, in `rows` order
  std::vector<char> hits;     // per sample: 1 if the arg-max is the label
  // per sample: log(p / (1 - p)) of the label, from the logits (LiRA's
  // statistic; calibration.h)
  std::vector<float> confidences;
  double accuracy() const {
    return losses.empty() ? 0.0 : static_cast<double>(correct) / losses.size();
  }
};

// No-grad, eval mode, batches of batch_size. Labels are the stored ones.
Result<EvalResult> Evaluate(torch::jit::Module& module, const DeviceData& data,
                            const std::vector<int64_t>& rows,
                            int64_t batch_size = 1024);

// Row indices as an int64 tensor on `device`.
at::Tensor RowTensor(const std::vector<int64_t>& rows, at::Device device);

// All parameters, set to require gradients.
std::vector<at::Tensor> TrainableParameters(torch::jit::Module& module);

}  // namespace lethe::core

#endif  // LETHE_CORE_TRAIN_H_

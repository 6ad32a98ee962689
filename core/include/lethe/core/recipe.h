// How a model is trained: architectures lethe builds itself, and the training
// recipe that retraining (and SISA) reuses. Torch-free.
#ifndef LETHE_CORE_RECIPE_H_
#define LETHE_CORE_RECIPE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "lethe/core/status.h"

namespace lethe::core {

enum class Optimizer { kSgdMomentum, kAdam };
enum class LrSchedule { kConstant, kLinearDecay };

// Defaults: the Fashion-MNIST reference recipe (docs/engine.md). With the
// learning rate decayed linearly to 0 per step, two retrains with different
// seeds differ by 0.03-0.2 points instead of 0.3-0.55 with a constant rate.
struct Recipe {
  Optimizer optimizer = Optimizer::kSgdMomentum;
  double lr = 0.05;
  double momentum = 0.9;      // SGD only
  double weight_decay = 0.0;  // L2 added to the gradient (PyTorch semantics)
  int epochs = 8;
  int batch_size = 128;
  uint64_t seed = 0;
  LrSchedule lr_schedule = LrSchedule::kLinearDecay;
  // Fraction of the steps over which the rate rises linearly from 0 to lr
  // before the schedule above takes over (0: none). Lets a fine-tune start
  // from a trained model at a rate that would diverge if applied at once.
  double warmup_fraction = 0.0;
  // When > 0, each step's gradients (all parameters together) are scaled
  // down to this L2 norm if larger (torch.nn.utils.clip_grad_norm_).
  double max_grad_norm = 0.0;

  Status Validate() const;
};

// kRfLogReg: logistic regression on frozen random Fourier features (Rahimi &
// Recht, NIPS 2007): embed(x) = u / |u|, u = cos(P flatten(x) + c), P and c
// drawn from the build seed and stored as buffers (not parameters), so no
// training or unlearning touches them and they hold no training data;
// forward(x) = linear(embed(x)). The linear head on a low-dimensional,
// unit-norm embedding is what certified removal (newton.h) is cheap and tight
// for.
enum class ArchKind { kLogReg, kMlp, kCnn, kRfLogReg };

// A built-in architecture. input_shape is the per-record feature shape; the
// CNN needs {C, H, W} with H and W divisible by 4.
struct Architecture {
  ArchKind kind = ArchKind::kMlp;
  std::vector<int64_t> input_shape;
  int64_t num_classes = 10;
  // MLP: the hidden layer widths; rf_logreg: one entry, the number of
  // random features.
  std::vector<int64_t> hidden = {256, 128};

  Status Validate() const;
};

// "logreg", "mlp", "cnn", "rf_logreg".
const char* ArchKindName(ArchKind kind);
Result<ArchKind> ParseArchKind(const std::string& name);

}  // namespace lethe::core

#endif  // LETHE_CORE_RECIPE_H_

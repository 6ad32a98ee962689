// Models are TorchScript modules, always: users export theirs from PyTorch
// (torch.jit.script or trace) and lethe's built-in architectures are built
// here as TorchScript (register_parameter + define), so every model lethe
// writes loads back in PyTorch with torch.jit.load. A model's version is the
// SHA-256 of its saved bytes.
//
// Torch-level header: includes torch/csrc/jit/api/module.h.
#ifndef LETHE_CORE_MODEL_H_
#define LETHE_CORE_MODEL_H_

#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lethe/core/dataset.h"
#include "lethe/core/recipe.h"
#include "lethe/core/status.h"

namespace lethe::core {

// A model may also define `trunk(x)` and `head(h)` with forward(x) =
// head(trunk(x)): the head re-fit (policy.h, HeadRefitParams) trains the
// head on the trunk's outputs computed once. Built-in mlp splits after its
// first hidden layer, cnn after its convolutions; logreg and rf_logreg have no
// split. A user's model opts in by defining both methods.

// A fresh, seeded model. Weights of matrices and convolutions and their biases
// are uniform in +-1/sqrt(fan_in), as torch.nn.Linear / Conv2d initialise.
Result<torch::jit::Module> BuildModel(const Architecture& arch, uint64_t seed);

// INVALID_ARGUMENT (with the loader's reason) for bytes that are not a
// TorchScript archive. The module is on the CPU, in eval mode.
Result<torch::jit::Module> LoadModel(std::string_view bytes);
Result<std::string> SaveModel(const torch::jit::Module& module);

// A deep copy: parameters and buffers are new tensors.
Result<torch::jit::Module> CloneModel(const torch::jit::Module& module);

// Re-draws every parameter as BuildModel does, whatever the module: tensors of
// rank >= 2 uniform in +-1/sqrt(fan_in); a rank-1 "bias" following such a
// tensor likewise with that fan_in; other rank-1 "weight"s (norm layers) 1,
// the rest 0; running_mean 0, running_var 1. Retraining an arbitrary
// TorchScript model starts here.
Status ReinitializeModel(torch::jit::Module& module, uint64_t seed);

// Buffers that are not training state: a model lists them (dotted names, as
// named_buffers gives them) in a List[str] attribute of its root module
// named lethe_data_free_buffers, e.g. in PyTorch
//   self.lethe_data_free_buffers: List[str] = ["proj", "mask"]
// lethe's rf_logreg declares its frozen random features so.
inline constexpr char kDataFreeBuffersAttr[] = "lethe_data_free_buffers";

// The buffers a retrain keeps that nobody declared free of training data:
// neither reset by ReinitializeModel (batch-norm statistics) nor listed in
// kDataFreeBuffersAttr. Normalisation statistics, an embedding table or a
// memory bank computed from the data would be among them, and would carry
// an erased subject into the retrained model.
std::vector<std::string> UndeclaredBuffers(const torch::jit::Module& module);

// The module maps a float32 batch [B, spec.shape...] to logits
// [B, spec.num_classes]: checked by a forward pass on two zero rows.
// INVALID_ARGUMENT saying what does not fit.
Status CheckModelFits(torch::jit::Module& module, const FeatureSpec& spec);

}  // namespace lethe::core

#endif  // LETHE_CORE_MODEL_H_

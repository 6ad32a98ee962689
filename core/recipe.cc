#include "lethe/core/recipe.h"

#include <cmath>

namespace lethe::core {

Status Recipe::Validate() const {
  if (!(lr > 0) || !std::isfinite(lr)) {
    return InvalidArgumentError("recipe lr must be positive and finite");
  }
  if (momentum < 0 || momentum >= 1) {
    return InvalidArgumentError("recipe momentum must be in [0, 1)");
  }
  if (weight_decay < 0) {
    return InvalidArgumentError("recipe weight_decay must be >= 0");
  }
  if (!(warmup_fraction >= 0 && warmup_fraction < 1)) {
    return InvalidArgumentError("recipe warmup_fraction must be in [0, 1)");
  }
  if (!(max_grad_norm >= 0) || !std::isfinite(max_grad_norm)) {
    return InvalidArgumentError("recipe max_grad_norm must be >= 0 and finite");
  }
  if (epochs <= 0 || batch_size <= 0) {
    return InvalidArgumentError("recipe epochs and batch_size must be > 0");
  }
  return OkStatus();
}

Status Architecture::Validate() const {
  if (input_shape.empty() || num_classes < 2) {
    return InvalidArgumentError(
        "architecture needs an input shape and at least 2 classes");
  }
  for (int64_t d : input_shape) {
    if (d <= 0) return InvalidArgumentError("input shape has a dimension <= 0");
  }
  if (kind == ArchKind::kCnn &&
      (input_shape.size() != 3 || input_shape[1] % 4 || input_shape[2] % 4)) {
    return InvalidArgumentError(
        "cnn needs input shape {C, H, W} with H and W divisible by 4");
  }
  for (int64_t h : hidden) {
    if (h <= 0) return InvalidArgumentError("hidden sizes must be positive");
  }
  if (kind == ArchKind::kRfLogReg && hidden.size() != 1) {
    return InvalidArgumentError(
        "rf_logreg needs one hidden entry: the number of random features");
  }
  return OkStatus();
}

const char* ArchKindName(ArchKind kind) {
  switch (kind) {
    case ArchKind::kLogReg:
      return "logreg";
    case ArchKind::kMlp:
      return "mlp";
    case ArchKind::kCnn:
      return "cnn";
    case ArchKind::kRfLogReg:
      return "rf_logreg";
  }
  return "unknown";
}

Result<ArchKind> ParseArchKind(const std::string& name) {
  if (name == "logreg") return ArchKind::kLogReg;
  if (name == "mlp") return ArchKind::kMlp;
  if (name == "cnn") return ArchKind::kCnn;
  if (name == "rf_logreg") return ArchKind::kRfLogReg;
  return InvalidArgumentError("unknown architecture '" + name +
                              "': use logreg, mlp, cnn or rf_logreg");
}

}  // namespace lethe::core

// The model row's JSON (lethe.v1 Architecture, TrainingRecipe,
// UnlearningPolicy in protobuf's JSON mapping) as the engine's types, with
// the API's documented defaults applied.
#ifndef LETHE_WORKER_ENGINE_MODEL_SPEC_H_
#define LETHE_WORKER_ENGINE_MODEL_SPEC_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "lethe/core/dataset.h"
#include "lethe/core/policy.h"
#include "lethe/core/recipe.h"
#include "storage/types.h"

namespace lethe::worker {

enum class StateKind { kNone, kSisa, kNewton };

struct ModelSpec {
  core::FeatureSpec features;
  bool torchscript = false;  // else `architecture` is built in
  core::Architecture architecture;
  core::Recipe recipe;
  core::Policy policy;
  std::optional<core::SisaParams> sisa;
  StateKind state_kind = StateKind::kNone;
  int64_t grace_seconds = 0;
  // The rows it was parsed from: the sandboxed engine sends these and
  // parses them again on its side.
  storage::ModelRow model_row;
  storage::DatasetRow dataset_row;
};

// The dataset row's feature spec, as core reads it.
core::FeatureSpec FeaturesOf(const storage::DatasetRow& dataset);

// INVALID_ARGUMENT if the stored JSON does not describe a usable model.
absl::StatusOr<ModelSpec> ParseModelSpec(const storage::ModelRow& model,
                                         const storage::DatasetRow& dataset);

}  // namespace lethe::worker

#endif  // LETHE_WORKER_ENGINE_MODEL_SPEC_H_

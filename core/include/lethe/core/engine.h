// The engine: what a worker calls. Train a registered architecture, validate
// an uploaded model, and unlearn: given a model, its training data and the
// subjects to forget, run the policy's method chain, verify each result
// against the gate, and return the new model with a report.
//
// Torch-free header: models travel as TorchScript bytes, data as a Dataset
// held once by the caller and shared by reference.
//
// Thread safety: an Engine is immutable; its methods may run concurrently on
// different requests (LibTorch's intra-op pool is shared, so on a small
// machine run one at a time).
#ifndef LETHE_CORE_ENGINE_H_
#define LETHE_CORE_ENGINE_H_

#include <string>
#include <string_view>
#include <vector>

#include "lethe/core/dataset.h"
#include "lethe/core/policy.h"
#include "lethe/core/recipe.h"
#include "lethe/core/report.h"
#include "lethe/core/runtime.h"
#include "lethe/core/status.h"

namespace lethe::core {

struct EngineOptions {
  Device device;  // from ParseDevice; InitRuntime is the caller's
};

struct TrainedModel {
  std::string model_bytes;   // TorchScript, CPU tensors
  std::string model_sha256;  // hex of SHA-256(model_bytes)
  double train_accuracy = 0;
  double test_accuracy = 0;  // 0 when the dataset has no test split
  double seconds = 0;
  std::string sisa_state;    // TrainSisa only
  std::string newton_state;  // TrainCertified only
};

struct UnlearnRequest {
  std::string_view model_bytes;
  const Dataset* dataset = nullptr;  // the model's training data + test split
  std::vector<std::string> forget_subjects;  // the union of a batch
  Recipe recipe;  // how the model was trained (used by retrain)
  // The model's first version was trained by lethe (Engine::Train,
  // TrainSisa, TrainCertified) with `recipe`, rather than registered with
  // weights trained elsewhere: only then is a retrain `exact` (policy.h,
  // Guarantee classes).
  bool trained_by_lethe = false;
  Policy policy;
  std::string_view sisa_state;    // models trained by TrainSisa
  std::string_view newton_state;  // models trained by TrainCertified
};

struct UnlearnOutcome {
  Report report;            // always filled
  std::string model_bytes;  // empty when !report.ok
  std::string model_sha256;
  std::string sisa_state;  // updated state, when the model has one
  std::string newton_state;
};

// The gate applied to a given model (Engine::CheckGate).
struct GateCheck {
  bool accepted = false;
  AttemptFailure failure = AttemptFailure::kNone;
  std::string reason;
  Metrics before;  // the request's model
  Calibration calibration_before;
  Metrics metrics;  // the candidate
  Calibration calibration;
};

class Engine {
 public:
  explicit Engine(EngineOptions options) : options_(options) {}

  // A built-in architecture trained on the dataset's train split.
  // INVALID_ARGUMENT if architecture, recipe and dataset do not fit.
  Result<TrainedModel> Train(const Architecture& arch, const Recipe& recipe,
                             const Dataset& dataset) const;
  // As Train, as SISA shards (sisa.h); the model is the ensemble.
  Result<TrainedModel> TrainSisa(const Architecture& arch, const Recipe& recipe,
                                 const SisaParams& sisa,
                                 const Dataset& dataset) const;
  // Logistic regression trained for certified removal (newton.h); arch must
  // be logreg or rf_logreg. `seed` builds the model (rf_logreg's features);
  // the objective's noise is drawn secretly, never from it.
  Result<TrainedModel> TrainCertified(const Architecture& arch,
                                      const NewtonParams& params, uint64_t seed,
                                      const Dataset& dataset) const;

  // OK if the bytes load as TorchScript and map a float32 batch of `spec`
  // features to [B, num_classes] logits; INVALID_ARGUMENT saying what is
  // wrong otherwise.
  Status Validate(std::string_view model_bytes, const FeatureSpec& spec) const;

  // Errors (no report): INVALID_ARGUMENT for a bad request, corrupt model
  // bytes or a model that does not fit the data; NOT_FOUND when no subject
  // has a training record. When every method of the chain fails, the result
  // is OK with report.ok == false and report.failure saying why.
  Result<UnlearnOutcome> Unlearn(const UnlearnRequest& request) const;

  // The request's gate (policy.h) applied to `candidate` as if a method had
  // produced it from request.model_bytes: how the benchmark and the tests
  // measure the gate on exact retrains and on the original model. Errors
  // as Unlearn's, and for a candidate that does not load or fit.
  Result<GateCheck> CheckGate(const UnlearnRequest& request,
                              std::string_view candidate) const;
  // As CheckGate for each candidate in turn, with the request's data, its
  // original model's assessment and its neighbour matching prepared once.
  Result<std::vector<GateCheck>> CheckGates(
      const UnlearnRequest& request,
      const std::vector<std::string_view>& candidates) const;

 private:
  Result<TrainedModel> TrainImpl(const Architecture& arch, const Recipe& recipe,
                                 const Dataset& dataset) const;

  EngineOptions options_;
};

}  // namespace lethe::core

#endif  // LETHE_CORE_ENGINE_H_

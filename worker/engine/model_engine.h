// ModelEngine: what the worker asks of an engine, as an interface.
//
// The worker never calls core::Engine directly: it holds a ModelEngine,
// so the engine can run elsewhere and the worker's batch logic can be
// tested with a fake. Two implementations: core::Engine in this process
// (trusted models only), and one process per call in a sandbox that holds
// no keys and no database credentials (worker/sandbox.h; the default).
//
// Contracts are core::Engine's (lethe/core/engine.h); Train dispatches on
// the model's spec (plain, SISA or certified training).
#ifndef LETHE_WORKER_ENGINE_MODEL_ENGINE_H_
#define LETHE_WORKER_ENGINE_MODEL_ENGINE_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "lethe/core/engine.h"
#include "worker/engine/model_spec.h"
#include "worker/engine/sandbox.h"

namespace lethe::worker {

class ModelEngine {
 public:
  virtual ~ModelEngine() = default;
  // "cpu" or "cuda": the models this engine may run
  // (UnlearningPolicy.device).
  virtual std::string device_kind() const = 0;
  // Human-readable device, for logs (e.g. "cuda:0").
  virtual std::string device_name() const = 0;
  virtual core::Status Validate(std::string_view model_bytes,
                                const core::FeatureSpec& features) const = 0;
  virtual core::Result<core::TrainedModel> Train(
      const ModelSpec& spec, const core::Dataset& data) const = 0;
  // request.recipe and request.policy are spec's (a sandboxed engine
  // rebuilds them from spec's rows).
  virtual core::Result<core::UnlearnOutcome> Unlearn(
      const ModelSpec& spec, const core::UnlearnRequest& request) const = 0;
};

// core::Engine in this process: initialises LibTorch's runtime with
// `threads` intra-op threads (0 = all cores) on `device` ("auto", "cpu",
// "cuda", "cuda:N"). INVALID_ARGUMENT for a device it cannot use.
absl::StatusOr<std::unique_ptr<ModelEngine>> NewInProcessEngine(
    const std::string& device, int threads);

// Each call in a fresh lethe-engine process confined by `sandbox`, which
// runs core::Engine on `device` with `threads`. FAILED_PRECONDITION when
// the sandbox cannot run here (CheckSandbox, then `lethe-engine --probe`
// started through it); INVALID_ARGUMENT for a bad device. CUDA devices get
// their /dev/nvidia* nodes bound in and no address-space limit (CUDA reserves
// far more than it uses).
absl::StatusOr<std::unique_ptr<ModelEngine>> NewSandboxedEngine(
    SandboxOptions sandbox, const std::string& device, int threads);

}  // namespace lethe::worker

#endif  // LETHE_WORKER_ENGINE_MODEL_ENGINE_H_

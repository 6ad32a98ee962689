// ModelEngine: what the worker asks of an engine, as an interface.
//
// The worker never calls core::Engine directly: it holds a ModelEngine,
// so the engine can run elsewhere (a sandboxed child process with no keys
// and no database credentials is the planned second implementation, issue
// 17) and the worker's batch logic can be tested with a fake. The one
// implementation today runs core::Engine in this process.
//
// Contracts are core::Engine's (lethe/core/engine.h); Train dispatches on
// the model's spec (plain, SISA or certified training).
#ifndef LETHE_WORKER_MODEL_ENGINE_H_
#define LETHE_WORKER_MODEL_ENGINE_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "lethe/core/engine.h"
#include "worker/model_spec.h"

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
  virtual core::Result<core::UnlearnOutcome> Unlearn(
      const core::UnlearnRequest& request) const = 0;
};

// core::Engine in this process: initialises LibTorch's runtime with
// `threads` intra-op threads (0 = all cores) on `device` ("auto", "cpu",
// "cuda", "cuda:N"). INVALID_ARGUMENT for a device it cannot use.
absl::StatusOr<std::unique_ptr<ModelEngine>> NewInProcessEngine(
    const std::string& device, int threads);

}  // namespace lethe::worker

#endif  // LETHE_WORKER_MODEL_ENGINE_H_

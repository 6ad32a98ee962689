#include "worker/engine/model_engine.h"

#include "lethe/core/runtime.h"

namespace lethe::worker {
namespace {

class InProcessEngine final : public ModelEngine {
 public:
  explicit InProcessEngine(core::Device device)
      : device_(device), engine_(core::EngineOptions{device}) {}

  std::string device_kind() const override {
    return device_.is_cuda() ? "cuda" : "cpu";
  }
  std::string device_name() const override { return device_.ToString(); }

  core::Status Validate(std::string_view model_bytes,
                        const core::FeatureSpec& features) const override {
    return engine_.Validate(model_bytes, features);
  }

  core::Result<core::TrainedModel> Train(
      const ModelSpec& spec, const core::Dataset& data) const override {
    switch (spec.state_kind) {
      case StateKind::kSisa:
        return engine_.TrainSisa(spec.architecture, spec.recipe, *spec.sisa,
                                 data);
      case StateKind::kNewton:
        return engine_.TrainCertified(spec.architecture,
                                      spec.policy.params.newton,
                                      spec.recipe.seed, data);
      case StateKind::kNone:
        break;
    }
    return engine_.Train(spec.architecture, spec.recipe, data);
  }

  core::Result<core::UnlearnOutcome> Unlearn(
      const ModelSpec& /*spec*/,
      const core::UnlearnRequest& request) const override {
    return engine_.Unlearn(request);
  }

 private:
  const core::Device device_;
  const core::Engine engine_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ModelEngine>> NewInProcessEngine(
    const std::string& device, int threads) {
  core::InitRuntime(threads);
  auto parsed = core::ParseDevice(device);
  if (!parsed.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(parsed.status().code()),
                        parsed.status().message());
  }
  return std::unique_ptr<ModelEngine>(
      std::make_unique<InProcessEngine>(parsed.value()));
}

}  // namespace lethe::worker

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
      const ModelSpec& spec, storage::ByteStream& stream) const override {
    core::Result<core::Dataset> data = Decode(stream);
    if (!data.ok()) return data.status();
    return TrainOn(spec, data.value());
  }

  core::Result<core::UnlearnOutcome> Unlearn(
      const ModelSpec& /*spec*/, const core::UnlearnRequest& request,
      storage::ByteStream& stream) const override {
    core::Result<core::Dataset> data = Decode(stream);
    if (!data.ok()) return data.status();
    core::UnlearnRequest req = request;
    req.dataset = &data.value();
    return engine_.Unlearn(req);
  }

 private:
  static core::Result<core::Dataset> Decode(storage::ByteStream& stream) {
    return core::DecodeDataset(ReaderOf(stream), stream.size());
  }

  core::Result<core::TrainedModel> TrainOn(const ModelSpec& spec,
                                           const core::Dataset& data) const {
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

  const core::Device device_;
  const core::Engine engine_;
};

}  // namespace

core::ByteReader ReaderOf(storage::ByteStream& stream) {
  return [&stream](char* buf, size_t max) -> core::Result<size_t> {
    absl::StatusOr<size_t> n = stream.Read(buf, max);
    if (!n.ok()) {
      // The codes core has keep theirs; any other (a lost database
      // connection, a damaged spool) is INTERNAL to the engine.
      core::Code code = core::Code::kInternal;
      switch (n.status().code()) {
        case absl::StatusCode::kInvalidArgument:
          code = core::Code::kInvalidArgument;
          break;
        case absl::StatusCode::kResourceExhausted:
          code = core::Code::kResourceExhausted;
          break;
        default:
          break;
      }
      return core::Status(code, std::string(n.status().message()));
    }
    return *n;
  };
}

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

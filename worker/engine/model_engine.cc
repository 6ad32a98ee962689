#include "worker/engine/model_engine.h"

#include <optional>
#include <utility>

#include "base/crypto.h"
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

  core::Status Validate(storage::ByteStream& model,
                        const core::FeatureSpec& features) const override {
    std::string held;
    core::Result<std::string_view> bytes = View(model, held);
    if (!bytes.ok()) return bytes.status();
    return engine_.Validate(bytes.value(), features);
  }

  core::Result<EngineTrained> Train(
      const ModelSpec& spec, storage::ByteStream& stream) const override {
    core::Result<core::Dataset> data = Decode(stream);
    if (!data.ok()) return data.status();
    core::Result<core::TrainedModel> trained = TrainOn(spec, data.value());
    if (!trained.ok()) return trained.status();
    EngineTrained out;
    out.trained = std::move(trained).value();
    out.model = ModelFileOf(std::move(out.trained.model_bytes));
    out.trained.model_bytes.clear();
    return out;
  }

  core::Result<EngineUnlearned> Unlearn(
      const ModelSpec& /*spec*/, const core::UnlearnRequest& request,
      storage::ByteStream& model, storage::ByteStream& stream) const override {
    std::string held;
    core::Result<std::string_view> bytes = View(model, held);
    if (!bytes.ok()) return bytes.status();
    core::Result<core::Dataset> data = Decode(stream);
    if (!data.ok()) return data.status();
    core::UnlearnRequest req = request;
    req.model_bytes = bytes.value();
    req.dataset = &data.value();
    core::Result<core::UnlearnOutcome> outcome = engine_.Unlearn(req);
    if (!outcome.ok()) return outcome.status();
    EngineUnlearned out;
    out.outcome = std::move(outcome).value();
    if (out.outcome.report.ok) {
      out.model = ModelFileOf(std::move(out.outcome.model_bytes));
      out.outcome.model_bytes.clear();
    }
    return out;
  }

 private:
  // The model's bytes without a copy when `model` holds them in memory (the
  // engine process's); otherwise read into `held`.
  static core::Result<std::string_view> View(storage::ByteStream& model,
                                             std::string& held) {
    if (std::optional<std::string_view> bytes = model.InMemory()) {
      return *bytes;
    }
    absl::StatusOr<std::string> read = storage::ReadWholeStream(model);
    if (!read.ok()) {
      return core::Status(
          core::Code::kInternal,
          "reading the model: " + std::string(read.status().message()));
    }
    held = std::move(*read);
    return std::string_view(held);
  }

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

ModelFile ModelFileOf(std::string bytes) {
  ModelFile file;
  file.sha256 = base::Sha256(bytes);
  file.bytes = std::make_unique<storage::OwnedByteStream>(std::move(bytes));
  return file;
}

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

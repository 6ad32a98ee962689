// ModelEngine over worker/sandbox.h: every call is one lethe-engine process.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lethe/core/runtime.h"
#include "worker/engine/engine_wire.h"
#include "worker/engine/model_engine.h"

namespace lethe::worker {
namespace {

core::Status ToCore(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kDeadlineExceeded:
      return core::Status(core::Code::kDeadlineExceeded,
                          std::string(s.message()));
    case absl::StatusCode::kResourceExhausted:
      return core::Status(core::Code::kResourceExhausted,
                          std::string(s.message()));
    case absl::StatusCode::kInvalidArgument:
      return core::Status(core::Code::kInvalidArgument,
                          std::string(s.message()));
    default:
      return core::Status(core::Code::kInternal, std::string(s.message()));
  }
}

class SandboxedEngine final : public ModelEngine {
 public:
  SandboxedEngine(SandboxOptions sandbox, core::Device device,
                  std::string device_arg, int threads,
                  EngineRunObserver observer)
      : sandbox_(std::move(sandbox)),
        device_(device),
        device_arg_(std::move(device_arg)),
        threads_(threads),
        observer_(std::move(observer)) {}

  std::string device_kind() const override {
    return device_.is_cuda() ? "cuda" : "cpu";
  }
  std::string device_name() const override {
    return device_.ToString() + " (sandboxed)";
  }

  core::Status Validate(std::string_view model_bytes,
                        const core::FeatureSpec& features) const override {
    EngineCall call = Call(EngineOp::kValidate);
    call.dataset.feature_shape = features.shape;
    call.dataset.feature_type =
        features.type == core::FeatureType::kUint8 ? "uint8" : "float32";
    call.dataset.num_classes = static_cast<int32_t>(features.num_classes);
    call.model_bytes = std::string(model_bytes);
    auto reply = Run(call, nullptr);
    return reply.ok() ? reply.value().status : reply.status();
  }

  core::Result<core::TrainedModel> Train(
      const ModelSpec& spec, storage::ByteStream& data) const override {
    EngineCall call = Call(EngineOp::kTrain);
    call.model = spec.model_row;
    call.dataset = spec.dataset_row;
    auto reply = Run(call, &data);
    if (!reply.ok()) return reply.status();
    if (!reply.value().status.ok()) return reply.value().status;
    return std::move(reply.value().trained);
  }

  core::Result<core::UnlearnOutcome> Unlearn(
      const ModelSpec& spec, const core::UnlearnRequest& request,
      storage::ByteStream& data) const override {
    EngineCall call = Call(EngineOp::kUnlearn);
    call.model = spec.model_row;
    call.dataset = spec.dataset_row;
    call.model_bytes = std::string(request.model_bytes);
    call.forget_subjects = request.forget_subjects;
    call.trained_by_lethe = request.trained_by_lethe;
    call.state =
        std::string(!request.sisa_state.empty() ? request.sisa_state
                                                : request.newton_state);
    auto reply = Run(call, &data);
    if (!reply.ok()) return reply.status();
    if (!reply.value().status.ok()) return reply.value().status;
    return std::move(reply.value().outcome);
  }

 private:
  EngineCall Call(EngineOp op) const {
    EngineCall call;
    call.op = op;
    call.device = device_arg_;
    call.threads = threads_;
    return call;
  }

  // The call's frame, then the training set (when there is one) straight
  // from where it lies.
  core::Result<EngineReply> Run(const EngineCall& call,
                                storage::ByteStream* data) const {
    storage::PrefixedStream input(EncodeEngineCallFrame(call), data);
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::string> out = RunInSandbox(sandbox_, {}, input);
    RunUsage usage;
    usage.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    core::Result<EngineReply> reply =
        out.ok() ? DecodeEngineReply(call.op, *out)
                 : core::Result<EngineReply>(ToCore(out.status()));
    if (reply.ok()) {
      usage.peak_rss_bytes = std::max<int64_t>(reply->peak_rss_bytes, 0);
      usage.cpu_seconds = std::max(reply->cpu_seconds, 0.0);
    }
    if (observer_) observer_(OpName(call.op), usage);
    if (!out.ok()) return ToCore(out.status());
    if (!reply.ok()) {
      return core::Status(core::Code::kInternal,
                          "the engine process sent a malformed reply: " +
                              reply.status().message());
    }
    return reply;
  }

  static std::string_view OpName(EngineOp op) {
    switch (op) {
      case EngineOp::kValidate:
        return "validate";
      case EngineOp::kTrain:
        return "train";
      case EngineOp::kUnlearn:
        return "unlearn";
    }
    return "unknown";
  }

  const SandboxOptions sandbox_;
  const core::Device device_;
  const std::string device_arg_;
  const int threads_;
  const EngineRunObserver observer_;
};

std::vector<std::string> CudaDeviceNodes() {
  std::vector<std::string> nodes;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("nvidia", 0) == 0) nodes.push_back(entry.path().string());
  }
  return nodes;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelEngine>> NewSandboxedEngine(
    SandboxOptions sandbox, const std::string& device, int threads,
    EngineRunObserver observer) {
  if (absl::Status st = CheckSandbox(sandbox); !st.ok()) return st;
  SandboxOptions probe = sandbox;
  probe.wall_seconds = 120;
  storage::StringByteStream nothing("");
  absl::StatusOr<std::string> hello = RunInSandbox(probe, {"--probe"}, nothing);
  if (!hello.ok() || *hello != kProbeReply) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the engine sandbox does not start here (",
        hello.ok() ? "unexpected reply" : hello.status().message(),
        "): install bubblewrap and allow user namespaces, or choose "
        "--engine-isolation=process (or --engine=in-process for trusted "
        "models)"));
  }
  auto parsed = core::ParseDevice(device);
  if (!parsed.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(parsed.status().code()),
                        parsed.status().message());
  }
  if (parsed.value().is_cuda()) {
    sandbox.memory_bytes = 0;
    for (std::string& node : CudaDeviceNodes()) {
      sandbox.devices.push_back(std::move(node));
    }
  }
  // The child resolves "auto" itself; pin it to what was found here.
  return std::unique_ptr<ModelEngine>(std::make_unique<SandboxedEngine>(
      std::move(sandbox), parsed.value(), parsed.value().ToString(), threads,
      std::move(observer)));
}

}  // namespace lethe::worker

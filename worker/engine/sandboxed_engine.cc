// ModelEngine over worker/sandbox.h: every call is one lethe-engine process.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/crypto.h"
#include "base/hex.h"
#include "lethe/core/runtime.h"
#include "lethe/core/wire.h"
#include "storage/spool.h"
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

// The engine's stdout as it arrives, into a spool file: the reply's frame
// (a u64 length, then the reply), then the model file, whose SHA-256 is
// taken here as it passes, so that the digest a version is published under
// is the worker's own.
class ReplySpool {
 public:
  explicit ReplySpool(storage::SpoolFile* file) : file_(file) {}

  absl::Status Add(std::string_view bytes) {
    if (absl::Status st = file_->Append(bytes); !st.ok()) return st;
    while (!bytes.empty()) {
      if (seen_ < 8) {
        const size_t n = std::min<size_t>(8 - seen_, bytes.size());
        len_.append(bytes.substr(0, n));
        seen_ += n;
        bytes.remove_prefix(n);
        if (seen_ == 8) {
          uint64_t len = 0;
          core::WireReader(len_).GetU64(&len);
          frame_end_ = len > kMaxFrame ? kMaxFrame : 8 + len;
        }
        continue;
      }
      if (seen_ < frame_end_) {
        const size_t n = static_cast<size_t>(
            std::min<uint64_t>(frame_end_ - seen_, bytes.size()));
        seen_ += n;
        bytes.remove_prefix(n);
        continue;
      }
      hash_.Update(absl::string_view(bytes.data(), bytes.size()));
      seen_ += bytes.size();
      bytes = {};
    }
    return absl::OkStatus();
  }

  // Where the model file starts.
  int64_t frame_end() const { return static_cast<int64_t>(frame_end_); }
  std::string ModelDigest() { return hash_.Finish(); }

 private:
  static constexpr uint64_t kMaxFrame = uint64_t{1} << 62;
  storage::SpoolFile* file_;
  std::string len_;
  uint64_t seen_ = 0;
  uint64_t frame_end_ = kMaxFrame;
  base::Sha256Stream hash_;
};

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

  core::Status Validate(storage::ByteStream& model,
                        const core::FeatureSpec& features) const override {
    EngineCall call = Call(EngineOp::kValidate);
    call.dataset.feature_shape = features.shape;
    call.dataset.feature_type =
        features.type == core::FeatureType::kUint8 ? "uint8" : "float32";
    call.dataset.num_classes = static_cast<int32_t>(features.num_classes);
    auto result = Run(call, &model, nullptr);
    return result.ok() ? result.value().reply.status : result.status();
  }

  core::Result<EngineTrained> Train(const ModelSpec& spec,
                                    storage::ByteStream& data) const override {
    EngineCall call = Call(EngineOp::kTrain);
    call.model = spec.model_row;
    call.dataset = spec.dataset_row;
    auto result = Run(call, nullptr, &data);
    if (!result.ok()) return result.status();
    if (!result.value().reply.status.ok()) return result.value().reply.status;
    EngineTrained out;
    out.trained = std::move(result.value().reply.trained);
    out.trained.model_sha256 = base::HexEncode(result.value().model.sha256);
    out.model = std::move(result.value().model);
    return out;
  }

  core::Result<EngineUnlearned> Unlearn(
      const ModelSpec& spec, const core::UnlearnRequest& request,
      storage::ByteStream& model, storage::ByteStream& data) const override {
    EngineCall call = Call(EngineOp::kUnlearn);
    call.model = spec.model_row;
    call.dataset = spec.dataset_row;
    call.forget_subjects = request.forget_subjects;
    call.trained_by_lethe = request.trained_by_lethe;
    call.state =
        std::string(!request.sisa_state.empty() ? request.sisa_state
                                                : request.newton_state);
    auto result = Run(call, &model, &data);
    if (!result.ok()) return result.status();
    if (!result.value().reply.status.ok()) return result.value().reply.status;
    EngineUnlearned out;
    out.outcome = std::move(result.value().reply.outcome);
    if (out.outcome.report.ok) {
      out.outcome.model_sha256 = base::HexEncode(result.value().model.sha256);
      out.model = std::move(result.value().model);
    }
    return out;
  }

 private:
  struct RunResult {
    EngineReply reply;
    ModelFile model;  // the file after the reply's frame, when it has one
  };

  EngineCall Call(EngineOp op) const {
    EngineCall call;
    call.op = op;
    call.device = device_arg_;
    call.threads = threads_;
    return call;
  }

  // The call's frame, then the model file and the training set (when there
  // are) straight from where they lie; the reply to a spool file, the
  // model file it carries hashed as it passes and left there.
  core::Result<RunResult> Run(EngineCall call, storage::ByteStream* model,
                              storage::ByteStream* data) const {
    if (model != nullptr) {
      if (absl::Status st = model->Rewind(); !st.ok()) return ToCore(st);
      call.model_size = model->size();
    }
    storage::ConcatStream tail(model, data);
    storage::PrefixedStream input(EncodeEngineCallFrame(call), &tail);
    auto spool = storage::SpoolFile::Create(sandbox_.spool_dir, false);
    if (!spool.ok()) return ToCore(spool.status());
    ReplySpool reply_spool(spool->get());
    const auto start = std::chrono::steady_clock::now();
    absl::Status ran = RunInSandbox(sandbox_, {}, input,
                                    [&reply_spool](std::string_view bytes) {
                                      return reply_spool.Add(bytes);
                                    });
    RunUsage usage;
    usage.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    core::Result<RunResult> result =
        ran.ok() ? ReadReply(call.op, std::move(*spool), reply_spool)
                 : core::Result<RunResult>(ToCore(ran));
    if (result.ok()) {
      usage.peak_rss_bytes =
          std::max<int64_t>(result.value().reply.peak_rss_bytes, 0);
      usage.cpu_seconds = std::max(result.value().reply.cpu_seconds, 0.0);
    }
    if (observer_) observer_(OpName(call.op), usage);
    if (!ran.ok()) return ToCore(ran);
    if (!result.ok()) {
      return core::Status(core::Code::kInternal,
                          "the engine process sent a malformed reply: " +
                              result.status().message());
    }
    return result;
  }

  // The reply's frame from `spool`, which becomes the model file after it
  // (when the reply announces one).
  core::Result<RunResult> ReadReply(EngineOp op,
                                    std::unique_ptr<storage::SpoolFile> spool,
                                    ReplySpool& seen) const {
    if (absl::Status st = spool->Rewind(); !st.ok()) return ToCore(st);
    core::Result<EngineReply> reply = ReadEngineReplyFrame(
        op, ReaderOf(*spool), static_cast<uint64_t>(sandbox_.max_reply_bytes));
    if (!reply.ok()) return reply.status();
    RunResult result;
    result.reply = std::move(reply).value();
    if (spool->size() - seen.frame_end() != result.reply.model_size) {
      return core::Status(core::Code::kInvalidArgument,
                          "its model file is not the size it announced");
    }
    if (result.reply.model_size > 0) {
      if (absl::Status st = spool->StartAt(seen.frame_end()); !st.ok()) {
        return ToCore(st);
      }
      result.model.bytes = std::move(spool);
      result.model.sha256 = seen.ModelDigest();
    }
    return result;
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

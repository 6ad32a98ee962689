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

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "lethe/core/engine.h"
#include "storage/model_store.h"
#include "worker/engine/model_spec.h"
#include "worker/engine/sandbox.h"

namespace lethe::worker {

// A model file an engine produced, kept where it lies: the sandboxed
// engine's in the spool file its reply went to (so that the worker never
// holds it), the in-process engine's in memory.
struct ModelFile {
  std::unique_ptr<storage::ByteStream> bytes;  // at its start
  std::string sha256;  // raw, computed on the worker's side of the sandbox
};

// `bytes` as a ModelFile in memory, with its digest.
ModelFile ModelFileOf(std::string bytes);

// What Train gives: `trained` with its model_bytes moved to `model`
// (trained.model_sha256 is the hex of model.sha256).
struct EngineTrained {
  core::TrainedModel trained;
  ModelFile model;
};

// What Unlearn gives: `outcome` with its model_bytes moved to `model`
// (outcome.model_sha256 the hex of model.sha256); no bytes when
// !outcome.report.ok.
struct EngineUnlearned {
  core::UnlearnOutcome outcome;
  ModelFile model;
};

class ModelEngine {
 public:
  virtual ~ModelEngine() = default;
  // "cpu" or "cuda": the models this engine may run
  // (UnlearningPolicy.device).
  virtual std::string device_kind() const = 0;
  // Human-readable device, for logs (e.g. "cuda:0").
  virtual std::string device_name() const = 0;
  // Model files are streams, read from their start: a spool file on the
  // worker, whatever its size (the sandboxed engine pipes it to its
  // process); the bytes in memory in the engine process.
  virtual core::Status Validate(storage::ByteStream& model,
                                const core::FeatureSpec& features) const = 0;
  // `data`: the training set in core's dataset encoding
  // (lethe/core/dataset.h), read once from its current position to its end.
  // The worker's is a TrainingSet spooled to disk (worker/training_set.h):
  // the sandboxed engine pipes it to its process, which decodes it as it
  // arrives, so the set is in memory once, in the process that trains.
  virtual core::Result<EngineTrained> Train(
      const ModelSpec& spec, storage::ByteStream& data) const = 0;
  // request.recipe and request.policy are spec's (a sandboxed engine
  // rebuilds them from spec's rows); request.model_bytes and
  // request.dataset are ignored: the model is `model`, the records are
  // `data`, as for Train.
  virtual core::Result<EngineUnlearned> Unlearn(
      const ModelSpec& spec, const core::UnlearnRequest& request,
      storage::ByteStream& model, storage::ByteStream& data) const = 0;
};

// `stream` as core's reader (its errors keep their codes).
core::ByteReader ReaderOf(storage::ByteStream& stream);

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
//
// `observer`, when set, is told what each run used ("validate", "train" or
// "unlearn"), from any thread: the worker exports it as
// lethe_engine_peak_rss_bytes and logs it.
// What one sandboxed run used.
struct RunUsage {
  // The engine process's peak resident set (its VmHWM, which exec resets,
  // as the process read it at the end); 0 when unknown (it died first).
  int64_t peak_rss_bytes = 0;
  double cpu_seconds = 0;   // the engine process's user + system time
  double wall_seconds = 0;  // the whole call, as the worker timed it
};
using EngineRunObserver =
    std::function<void(std::string_view op, const RunUsage& usage)>;
absl::StatusOr<std::unique_ptr<ModelEngine>> NewSandboxedEngine(
    SandboxOptions sandbox, const std::string& device, int threads,
    EngineRunObserver observer = nullptr);

}  // namespace lethe::worker

#endif  // LETHE_WORKER_ENGINE_MODEL_ENGINE_H_

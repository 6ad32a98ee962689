// lethe-engine: one engine call in a confined process (worker/sandbox.h).
// Reads an EngineCall (worker/engine_wire.h) on stdin, writes the
// EngineReply on stdout, exits 0; anything else (a crash, a limit) is the
// worker's to report. It installs its seccomp filter after reading the call
// and starting LibTorch's threads, before it parses the model: the model's
// code and LibTorch's deserialiser run with no file, network or process
// calls left. Not meant to be run by hand.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <new>
#include <string>

#include "lethe/core/dataset.h"
#include "lethe/core/runtime.h"
#include "worker/engine/engine_wire.h"
#include "worker/engine/model_engine.h"
#include "worker/engine/model_spec.h"
#include "worker/engine/sandbox.h"
#include "worker/engine/seccomp.h"

namespace lethe::worker {
namespace {

std::string ReadAll(int fd) {
  std::string in;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      in.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      return in;
    }
  }
}

bool WriteAll(int fd, const std::string& out) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = write(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

core::Status FromAbsl(const absl::Status& s) {
  if (s.ok()) return core::OkStatus();
  return core::Status(static_cast<core::Code>(s.code()),
                      std::string(s.message()));
}

// Runs the call on `engine`; fills reply.
void Serve(const ModelEngine& engine, const EngineCall& call,
           EngineReply& reply) {
  if (call.op == EngineOp::kValidate) {
    core::FeatureSpec features;
    features.shape = call.dataset.feature_shape;
    features.type = call.dataset.feature_type == "uint8"
                        ? core::FeatureType::kUint8
                        : core::FeatureType::kFloat32;
    features.num_classes = call.dataset.num_classes;
    reply.status = engine.Validate(call.model_bytes, features);
    return;
  }
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(call.model, call.dataset);
  if (!spec.ok()) {
    reply.status = FromAbsl(spec.status());
    return;
  }
  core::Result<core::Dataset> data = core::DecodeDataset(call.dataset_bytes);
  if (!data.ok()) {
    reply.status = data.status();
    return;
  }
  if (call.op == EngineOp::kTrain) {
    auto trained = engine.Train(*spec, data.value());
    reply.status = trained.status();
    if (trained.ok()) reply.trained = std::move(trained).value();
    return;
  }
  core::UnlearnRequest req;
  req.model_bytes = call.model_bytes;
  req.dataset = &data.value();
  req.forget_subjects = call.forget_subjects;
  req.recipe = spec->recipe;
  req.trained_by_lethe = call.trained_by_lethe;
  req.policy = spec->policy;
  if (spec->state_kind == StateKind::kSisa) req.sisa_state = call.state;
  if (spec->state_kind == StateKind::kNewton) req.newton_state = call.state;
  auto outcome = engine.Unlearn(*spec, req);
  reply.status = outcome.status();
  if (outcome.ok()) reply.outcome = std::move(outcome).value();
}

int Main(int argc, char** argv) {
  // The worker's start-up check that the sandbox runs at all.
  if (argc == 2 && std::string(argv[1]) == "--probe") {
    std::cout << kProbeReply << std::flush;
    return 0;
  }
  // No file of its own to write, ever.
  rlimit no_files{0, 0};
  setrlimit(RLIMIT_FSIZE, &no_files);
  const std::string input = ReadAll(0);
  core::Result<EngineCall> call = DecodeEngineCall(input);
  if (!call.ok()) {
    std::cerr << "lethe-engine: " << call.status().ToString() << "\n";
    return 2;
  }
  auto engine = NewInProcessEngine(call->device, call->threads);
  if (!engine.ok()) {
    EngineReply reply;
    reply.status = FromAbsl(engine.status());
    return WriteAll(1, EncodeEngineReply(call->op, reply)) ? 0 : 3;
  }
  core::WarmUpRuntime();
  if (std::string err = InstallEngineSeccompFilter(); !err.empty()) {
    std::cerr << "lethe-engine: seccomp: " << err << "\n";
    return 4;
  }
  EngineReply reply;
  try {
    Serve(**engine, *call, reply);
  } catch (const std::bad_alloc&) {
    reply = EngineReply{};
    reply.status =
        core::Status(core::Code::kResourceExhausted,
                     "the engine ran out of memory (--engine-memory-mb)");
  }
  return WriteAll(1, EncodeEngineReply(call->op, reply)) ? 0 : 3;
}

}  // namespace
}  // namespace lethe::worker

int main(int argc, char** argv) { return lethe::worker::Main(argc, argv); }

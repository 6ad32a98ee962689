// lethe-engine: one engine call in a confined process (worker/sandbox.h).
// Reads an EngineCall (worker/engine_wire.h) on stdin, writes the
// EngineReply on stdout, exits 0; anything else (a crash, a limit) is the
// worker's to report. It installs its seccomp filter after reading the call
// and starting LibTorch's threads, before it reads the model file and the
// training set that follow the call and parses the model: the decoder, the
// model's code and LibTorch's deserialiser run with no file, network or process
// calls left. Not meant to be run by hand.
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
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

// The rest of the call's stdin: the training set, decoded as it is read.
class StdinStream final : public storage::ByteStream {
 public:
  absl::StatusOr<size_t> Read(char* buf, size_t max) override {
    for (;;) {
      const ssize_t n = read(0, buf, max);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return absl::InternalError("cannot read stdin");
    }
  }
  absl::Status Rewind() override {
    return absl::FailedPreconditionError("stdin cannot be rewound");
  }
  int64_t size() const override { return -1; }  // unknown
};

bool WriteAll(int fd, std::string_view out) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = write(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// This process's peak resident set (VmHWM: exec reset it, so none of the
// worker's or bubblewrap's memory is in it), or 0 when /proc cannot say.
int64_t PeakRssBytes() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  int64_t kib = 0;
  char line[256];
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    int64_t v = 0;
    if (std::sscanf(line, "VmHWM: %" SCNd64 " kB", &v) == 1) kib = v;
  }
  std::fclose(f);
  return kib * 1024;
}

double CpuSeconds() {
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

core::Status FromAbsl(const absl::Status& s) {
  if (s.ok()) return core::OkStatus();
  return core::Status(static_cast<core::Code>(s.code()),
                      std::string(s.message()));
}

// The model file that follows the call's frame on stdin.
core::Result<std::string> ReadModel(const EngineCall& call) {
  std::string model(static_cast<size_t>(call.model_size), '\0');
  StdinStream in;
  for (size_t got = 0; got < model.size();) {
    absl::StatusOr<size_t> n = in.Read(model.data() + got, model.size() - got);
    if (!n.ok() || *n == 0) {
      return core::Status(core::Code::kInvalidArgument,
                          "the model file on stdin is short");
    }
    got += *n;
  }
  return model;
}

// Runs the call on `engine`; fills reply, and `produced` with the model
// file that follows it.
void Serve(const ModelEngine& engine, const EngineCall& call,
           EngineReply& reply, ModelFile& produced) {
  std::string model_bytes;
  if (call.op != EngineOp::kTrain) {
    core::Result<std::string> read = ReadModel(call);
    if (!read.ok()) {
      reply.status = read.status();
      return;
    }
    model_bytes = std::move(read).value();
  }
  storage::StringByteStream model(model_bytes);
  if (call.op == EngineOp::kValidate) {
    reply.status = engine.Validate(model, FeaturesOf(call.dataset));
    return;
  }
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(call.model, call.dataset);
  if (!spec.ok()) {
    reply.status = FromAbsl(spec.status());
    return;
  }
  StdinStream data;
  if (call.op == EngineOp::kTrain) {
    auto trained = engine.Train(*spec, data);
    reply.status = trained.status();
    if (trained.ok()) {
      reply.trained = std::move(trained.value().trained);
      produced = std::move(trained.value().model);
    }
    return;
  }
  core::UnlearnRequest req;
  req.forget_subjects = call.forget_subjects;
  req.recipe = spec->recipe;
  req.trained_by_lethe = call.trained_by_lethe;
  req.policy = spec->policy;
  if (spec->state_kind == StateKind::kSisa) req.sisa_state = call.state;
  if (spec->state_kind == StateKind::kNewton) req.newton_state = call.state;
  auto outcome = engine.Unlearn(*spec, req, model, data);
  reply.status = outcome.status();
  if (outcome.ok()) {
    reply.outcome = std::move(outcome.value().outcome);
    produced = std::move(outcome.value().model);
  }
}

// The reply's frame, then the model file.
int WriteReply(EngineOp op, EngineReply& reply, const ModelFile& produced) {
  std::string_view model;
  if (produced.bytes != nullptr) model = produced.bytes->InMemory().value();
  reply.model_size = static_cast<int64_t>(model.size());
  if (!WriteAll(1, EncodeEngineReplyFrame(op, reply))) return 3;
  return WriteAll(1, model) ? 0 : 3;
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
  // The call now; the training set after it is read once the filter is
  // in place.
  StdinStream in;
  core::Result<EngineCall> call = ReadEngineCallFrame(ReaderOf(in));
  if (!call.ok()) {
    std::cerr << "lethe-engine: " << call.status().ToString() << "\n";
    return 2;
  }
  auto engine = NewInProcessEngine(call->device, call->threads);
  if (!engine.ok()) {
    EngineReply reply;
    reply.status = FromAbsl(engine.status());
    return WriteReply(call->op, reply, ModelFile{});
  }
  core::WarmUpRuntime();
  if (std::string err = InstallEngineSeccompFilter(); !err.empty()) {
    std::cerr << "lethe-engine: seccomp: " << err << "\n";
    return 4;
  }
  EngineReply reply;
  ModelFile produced;
  try {
    Serve(**engine, *call, reply, produced);
  } catch (const std::bad_alloc&) {
    reply = EngineReply{};
    produced = ModelFile{};
    reply.status =
        core::Status(core::Code::kResourceExhausted,
                     "the engine ran out of memory (--engine-memory-mb)");
  }
  reply.peak_rss_bytes = PeakRssBytes();
  reply.cpu_seconds = CpuSeconds();
  return WriteReply(call->op, reply, produced);
}

}  // namespace
}  // namespace lethe::worker

int main(int argc, char** argv) { return lethe::worker::Main(argc, argv); }

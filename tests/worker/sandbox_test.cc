// The engine sandbox (worker/engine/sandbox.h): what the confined process
// can see and do, its limits, and the sandboxed engine against the
// in-process one, with hostile models (issue 17).
#include "worker/engine/sandbox.h"

#include <torch/script.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "base/crypto.h"
#include "base/hex.h"
#include "lethe/core/dataset.h"
#include "lethe/core/model.h"
#include "lethe/core/report.h"
#include "storage/model_store.h"
#include "worker/engine/engine_wire.h"
#include "worker/engine/model_engine.h"
#include "worker/engine/model_spec.h"
#include "worker/engine/seccomp.h"

namespace lethe::worker {
namespace {

// /bin/sh stands in for the engine binary: the confinement is the same.
SandboxOptions Shell() {
  SandboxOptions o;
  o.engine_binary = "/bin/sh";
  o.wall_seconds = 60;
  return o;
}

absl::StatusOr<std::string> Sh(const SandboxOptions& o,
                               const std::string& script) {
  storage::StringByteStream nothing("");
  return RunInSandbox(o, {"-c", script}, nothing);
}

TEST(SandboxTest, SeesNoFilesNetworkEnvironmentOrDescriptorsOfTheWorker) {
  const std::string secret = ::testing::TempDir() + "/sandbox_secret";
  std::ofstream(secret) << "signing key";
  setenv("LETHE_DATABASE_URL", "postgresql://lethe:password@db/lethe", 1);
  const int fd = open(secret.c_str(), O_RDONLY);  // no O_CLOEXEC
  ASSERT_GE(fd, 0);
  auto out =
      Sh(Shell(), "cat " + secret +
                      " 2>&1; env; ls /proc/$$/fd; "
                      "ls / /etc /home /root /var 2>&1; id -u; "
                      "tail -n +3 /proc/net/dev; touch /usr/x 2>&1; echo end");
  close(fd);
  unsetenv("LETHE_DATABASE_URL");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(absl::StrContains(*out, "signing key")) << *out;
  EXPECT_FALSE(absl::StrContains(*out, "LETHE_DATABASE_URL")) << *out;
  EXPECT_FALSE(absl::StrContains(*out, "password")) << *out;
  EXPECT_TRUE(absl::StrContains(*out, "\n0\n1\n2\n")) << *out;  // fds
  EXPECT_FALSE(absl::StrContains(*out, "\n3\n")) << *out;
  EXPECT_TRUE(absl::StrContains(*out, "65534")) << *out;  // nobody
  EXPECT_TRUE(absl::StrContains(*out, "Read-only file system")) << *out;
  // One network interface: the namespace's own loopback.
  EXPECT_TRUE(absl::StrContains(*out, "lo:")) << *out;
  EXPECT_FALSE(absl::StrContains(*out, "eth")) << *out;
  EXPECT_TRUE(absl::StrContains(*out, "end")) << *out;
}

TEST(SandboxTest, ProcessIsolationStillDropsEnvironmentAndDescriptors) {
  SandboxOptions o = Shell();
  o.isolation = Isolation::kProcess;
  setenv("LETHE_DATABASE_URL", "postgresql://lethe:password@db/lethe", 1);
  const int fd = open("/dev/null", O_RDONLY);
  auto out = Sh(o, "env; ls /proc/$$/fd");
  close(fd);
  unsetenv("LETHE_DATABASE_URL");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(absl::StrContains(*out, "password")) << *out;
  EXPECT_FALSE(absl::StrContains(*out, "\n3\n")) << *out;
}

TEST(SandboxTest, WallClockLimitKillsAndSaysSo) {
  SandboxOptions o = Shell();
  o.wall_seconds = 1;
  auto out = Sh(o, "while :; do :; done");
  ASSERT_EQ(out.status().code(), absl::StatusCode::kDeadlineExceeded)
      << out.status();
  EXPECT_TRUE(absl::StrContains(out.status().message(), "wall-clock"));
  // Also when the process closes its output and spins.
  out = Sh(o, "exec >&- 2>&-; while :; do :; done");
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDeadlineExceeded)
      << out.status();
}

TEST(SandboxTest, CpuLimitKillsAndSaysSo) {
  SandboxOptions o = Shell();
  o.cpu_seconds = 1;
  auto out = Sh(o, "while :; do :; done");
  ASSERT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted)
      << out.status();
  EXPECT_TRUE(absl::StrContains(out.status().message(), "CPU"));
}

TEST(SandboxTest, MemoryLimitStopsAnAllocation) {
  SandboxOptions o = Shell();
  o.memory_bytes = int64_t{64} << 20;
  // 256 MB in one shell variable.
  auto out = Sh(o, "x=$(head -c 268435456 /dev/zero | tr '\\0' a); echo ok");
  EXPECT_FALSE(out.ok() && absl::StrContains(*out, "ok")) << out.status();
}

TEST(SandboxTest, ReplyOverItsCapIsResourceExhausted) {
  SandboxOptions o = Shell();
  o.max_reply_bytes = 1 << 20;
  auto out = Sh(o, "yes");
  ASSERT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted)
      << out.status();
}

TEST(SandboxTest, FailuresCarryTheExitAndStderr) {
  auto out = Sh(Shell(), "echo broken >&2; exit 3");
  ASSERT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(out.status().message(), "code 3"));
  EXPECT_TRUE(absl::StrContains(out.status().message(), "broken"));
  out = Sh(Shell(), "kill -SEGV $$");
  ASSERT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(out.status().message(), "signal 11"));
}

TEST(SandboxTest, InputReachesStdinEvenWhenLarge) {
  std::string input(8 << 20, 'x');
  storage::StringByteStream stream(input);
  auto out = RunInSandbox(Shell(), {"-c", "wc -c"}, stream);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(std::atoll(out->c_str()), static_cast<long long>(input.size()));
}

TEST(SandboxTest, MissingBinaryOrBwrapIsAClearPrecondition) {
  SandboxOptions o = Shell();
  o.engine_binary = "/nonexistent/lethe-engine";
  EXPECT_EQ(CheckSandbox(o).code(), absl::StatusCode::kFailedPrecondition);
  o = Shell();
  o.bwrap = "/nonexistent/bwrap";
  absl::Status st = CheckSandbox(o);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(st.message(), "bubblewrap"));
  o.isolation = Isolation::kProcess;
  EXPECT_TRUE(CheckSandbox(o).ok());
  EXPECT_FALSE(ParseIsolation("none").ok());
}

// In a forked child: install the filter, try what it forbids, and report
// each outcome as one bit of the exit code.
TEST(SeccompTest, ForbidsFilesNetworkAndProcessesButNotThreads) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (!InstallEngineSeccompFilter().empty()) _exit(100);
    int bits = 0;
    errno = 0;
    const std::string path = ::testing::TempDir() + "/seccomp_written";
    if (open(path.c_str(), O_WRONLY | O_CREAT, 0600) < 0 && errno == EACCES &&
        open("/etc/hostname", O_RDWR) < 0 && errno == EACCES) {
      bits |= 1;
    }
    if (socket(AF_INET, SOCK_STREAM, 0) < 0 && errno == EPERM) bits |= 2;
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    if (execv("/bin/true", argv) < 0 && errno == EPERM) bits |= 4;
    if (fork() < 0 && errno == EPERM) bits |= 8;
    bool ran = false;
    std::thread([&ran] { ran = true; }).join();
    if (ran) bits |= 16;
    if (kill(getppid(), 0) < 0 && errno == EPERM) bits |= 32;
    _exit(bits);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 63);
}

// The engine through the sandbox equals the engine in this process.
storage::DatasetRow Features() {
  storage::DatasetRow d;
  d.feature_shape = {8};
  d.feature_type = "float32";
  d.num_classes = 3;
  return d;
}

storage::ModelRow Mlp() {
  storage::ModelRow m;
  m.id = "m";
  m.architecture_json = R"({"kind": "KIND_MLP", "hiddenUnits": [16]})";
  m.recipe_json = R"({"learningRate": 0.1, "epochs": 3, "batchSize": 32})";
  m.policy_json = R"({"methods": ["UNLEARNING_METHOD_FINETUNE",
                               "UNLEARNING_METHOD_RETRAIN"]})";
  return m;
}

core::Dataset Synthetic() {
  core::DatasetBuilder b(
      core::FeatureSpec{{8}, core::FeatureType::kFloat32, 3});
  for (int i = 0; i < 240; ++i) {
    std::vector<float> x(8);
    const int label = i % 3;
    for (int j = 0; j < 8; ++j) {
      x[j] = static_cast<float>(((i * 7 + j * 13) % 17) / 17.0 + label);
    }
    EXPECT_TRUE(b.AddValues(i, "s" + std::to_string(i / 10), label,
                            i < 200 ? core::Split::kTrain : core::Split::kTest,
                            x)
                    .ok());
  }
  return *std::move(b).Build();
}

SandboxOptions Engine() {
  SandboxOptions o;
  o.engine_binary = LETHE_ENGINE_BINARY;
  o.wall_seconds = 120;
  return o;
}

TEST(SandboxedEngineTest, TrainsAndUnlearnsBitForBitAsInProcess) {
  std::mutex mu;
  std::vector<std::pair<std::string, RunUsage>> runs;
  auto sandboxed = NewSandboxedEngine(
      Engine(), "cpu", 1, [&](std::string_view op, const RunUsage& usage) {
        std::lock_guard lock(mu);
        runs.emplace_back(std::string(op), usage);
      });
  auto local = NewInProcessEngine("cpu", 1);
  ASSERT_TRUE(sandboxed.ok()) << sandboxed.status();
  ASSERT_TRUE(local.ok()) << local.status();
  auto spec = ParseModelSpec(Mlp(), Features());
  ASSERT_TRUE(spec.ok()) << spec.status();
  // Each call reads its own stream of the encoded set, as the worker's
  // TrainingSet hands it over.
  const std::string data = core::EncodeDataset(Synthetic());
  storage::StringByteStream d1(data), d2(data), d3(data), d4(data), d5(data);
  auto a = (*sandboxed)->Train(*spec, d1);
  auto b = (*local)->Train(*spec, d2);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a.value().trained.model_sha256, b.value().trained.model_sha256);
  EXPECT_EQ(a.value().model.sha256, b.value().model.sha256);
  EXPECT_EQ(a.value().trained.test_accuracy, b.value().trained.test_accuracy);
  // The sandboxed engine's model file stays in its spool file, not in the
  // worker's memory, and is the same bytes.
  ASSERT_NE(a.value().model.bytes, nullptr);
  EXPECT_FALSE(a.value().model.bytes->InMemory().has_value());
  const std::string trained_bytes =
      *storage::ReadWholeStream(*a.value().model.bytes);
  EXPECT_EQ(trained_bytes, *b.value().model.bytes->InMemory());
  EXPECT_EQ(base::Sha256(trained_bytes), a.value().model.sha256);
  // Each run reports what its process used, measured by the process: at
  // least LibTorch's libraries, far less than the address-space limit.
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(runs.size(), 1u);  // the probe at start is not a run
    EXPECT_EQ(runs[0].first, "train");
    EXPECT_GT(runs[0].second.peak_rss_bytes, int64_t{20} << 20);
    EXPECT_LT(runs[0].second.peak_rss_bytes, Engine().memory_bytes);
    EXPECT_GT(runs[0].second.cpu_seconds, 0.0);
    EXPECT_GT(runs[0].second.wall_seconds, 0.0);
  }
  EXPECT_TRUE(
      (*sandboxed)->Validate(*a.value().model.bytes, spec->features).ok());

  core::UnlearnRequest req;
  req.forget_subjects = {"s1", "s7"};
  req.recipe = spec->recipe;
  req.policy = spec->policy;
  req.trained_by_lethe = true;
  storage::StringByteStream model(trained_bytes);
  auto ua = (*sandboxed)->Unlearn(*spec, req, *a.value().model.bytes, d3);
  auto ub = (*local)->Unlearn(*spec, req, model, d4);
  ASSERT_TRUE(ua.ok()) << ua.status().ToString();
  ASSERT_TRUE(ub.ok()) << ub.status().ToString();
  EXPECT_EQ(ua.value().outcome.model_sha256, ub.value().outcome.model_sha256);
  EXPECT_EQ(ua.value().model.sha256, ub.value().model.sha256);
  EXPECT_EQ(*storage::ReadWholeStream(*ua.value().model.bytes),
            *ub.value().model.bytes->InMemory());
  EXPECT_EQ(ua.value().outcome.report.method, ub.value().outcome.report.method);
  EXPECT_EQ(ua.value().outcome.report.forget_records, 20);
  // Errors cross the boundary with their code.
  req.forget_subjects = {"nobody"};
  EXPECT_EQ((*sandboxed)->Unlearn(*spec, req, model, d5).status().code(),
            core::Code::kNotFound);
  storage::StringByteStream junk("junk");
  EXPECT_EQ((*sandboxed)->Validate(junk, spec->features).code(),
            core::Code::kInvalidArgument);
}

// An engine binary that answers the probe, then swallows its input and
// writes `reply` (a file) as its stdout: a lying engine process.
SandboxOptions Replying(const std::string& name, const std::string& reply) {
  const std::string dir = ::testing::TempDir();
  const std::string reply_path = dir + "/" + name + ".reply";
  std::ofstream(reply_path, std::ios::binary) << reply;
  const std::string script = dir + "/" + name + ".sh";
  std::ofstream(script) << "#!/bin/sh\n"
                           "if [ \"$1\" = --probe ]; then printf 'lethe-engine "
                           "ok\\n'; exit 0; fi\n"
                           "cat >/dev/null\ncat "
                        << reply_path << "\n";
  chmod(script.c_str(), 0755);
  SandboxOptions o;
  o.engine_binary = script;
  o.isolation = Isolation::kProcess;
  o.wall_seconds = 60;
  return o;
}

// The model file after the reply is the worker's to measure: its digest is
// taken as it arrives (whatever the reply claims), and a file that is not
// the size the reply announced fails the call.
TEST(SandboxedEngineTest, TheModelFileIsHashedHereAndMustBeTheAnnouncedSize) {
  auto spec = ParseModelSpec(Mlp(), Features());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EngineReply reply;
  reply.trained.model_sha256 = std::string(64, '0');  // a lie
  reply.model_size = 9;
  const std::string frame = EncodeEngineReplyFrame(EngineOp::kTrain, reply);
  {
    auto engine =
        NewSandboxedEngine(Replying("honest", frame + "MODELFILE"), "cpu", 1);
    ASSERT_TRUE(engine.ok()) << engine.status();
    storage::StringByteStream data("");
    auto trained = (*engine)->Train(*spec, data);
    ASSERT_TRUE(trained.ok()) << trained.status().ToString();
    EXPECT_EQ(*storage::ReadWholeStream(*trained.value().model.bytes),
              "MODELFILE");
    EXPECT_EQ(trained.value().model.sha256, base::Sha256("MODELFILE"));
    EXPECT_EQ(trained.value().trained.model_sha256,
              base::HexEncode(base::Sha256("MODELFILE")));
  }
  for (const std::string& tail :
       {std::string("MODEL"), std::string("MODELFILE+")}) {
    auto engine = NewSandboxedEngine(Replying("lying", frame + tail), "cpu", 1);
    ASSERT_TRUE(engine.ok()) << engine.status();
    storage::StringByteStream data("");
    auto trained = (*engine)->Train(*spec, data);
    EXPECT_EQ(trained.status().code(), core::Code::kInternal) << tail;
    EXPECT_TRUE(absl::StrContains(trained.status().message(),
                                  "not the size it announced"))
        << trained.status().ToString();
  }
}

std::string Hostile(const std::string& forward) {
  torch::jit::Module m("__torch__.Hostile");
  m.define(forward);
  return *core::SaveModel(m);
}

core::FeatureSpec Spec() { return {{8}, core::FeatureType::kFloat32, 3}; }

// A sandbox that cannot start stops the worker at start, saying why and
// what to choose instead (bubblewrap standing in: /bin/false).
TEST(SandboxedEngineTest, ASandboxThatCannotStartIsRefusedAtStart) {
  SandboxOptions o = Engine();
  o.bwrap = "/bin/false";
  auto engine = NewSandboxedEngine(o, "cpu", 1);
  ASSERT_EQ(engine.status().code(), absl::StatusCode::kFailedPrecondition)
      << engine.status();
  EXPECT_TRUE(absl::StrContains(engine.status().message(),
                                "--engine-isolation=process"))
      << engine.status();
  o.isolation = Isolation::kProcess;  // no bubblewrap needed
  EXPECT_TRUE(NewSandboxedEngine(o, "cpu", 1).ok());
}

TEST(SandboxedEngineTest, AModelThatLoopsIsKilledAtTheWallClockLimit) {
  SandboxOptions o = Engine();
  o.wall_seconds = 3;
  auto engine = NewSandboxedEngine(o, "cpu", 1);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::string model = Hostile(
      "def forward(self, x: Tensor) -> Tensor:\n"
      "    while True:\n"
      "        x = x + 1\n"
      "    return x\n");
  storage::StringByteStream stream(model);
  core::Status st = (*engine)->Validate(stream, Spec());
  EXPECT_EQ(st.code(), core::Code::kDeadlineExceeded) << st.ToString();
}

TEST(SandboxedEngineTest, AModelThatAllocatesWithoutBoundFailsTheCall) {
  SandboxOptions o = Engine();
  o.memory_bytes = int64_t{2} << 30;
  auto engine = NewSandboxedEngine(o, "cpu", 1);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::string model = Hostile(
      "def forward(self, x: Tensor) -> Tensor:\n"
      "    xs: List[Tensor] = []\n"
      "    for i in range(1000000):\n"
      "        xs.append(torch.full([1 << 24], float(i)))\n"
      "    return x[:, :3] * float(len(xs))\n");
  storage::StringByteStream stream(model);
  core::Status st = (*engine)->Validate(stream, Spec());
  // The allocation past the limit fails inside the engine, which reports
  // where; the worker's memory never sees it.
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.message(), "torch.full")) << st.ToString();
}

TEST(SandboxedEngineTest, AModelThatReadsAFileIsRefused) {
  auto engine = NewSandboxedEngine(Engine(), "cpu", 1);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::string model = Hostile(
      "def forward(self, x: Tensor) -> Tensor:\n"
      "    return torch.from_file('/etc/hostname', False, 3).view(1, 3)\n");
  storage::StringByteStream stream(model);
  core::Status st = (*engine)->Validate(stream, Spec());
  EXPECT_EQ(st.code(), core::Code::kInvalidArgument) << st.ToString();
  EXPECT_TRUE(absl::StrContains(st.message(), "aten::from_file"));
}

}  // namespace
}  // namespace lethe::worker

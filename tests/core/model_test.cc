#include "lethe/core/model.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "lethe/core/engine.h"
#include "lethe/core/sha256.h"
#include "lethe/core/train.h"
#include "test_util.h"

namespace lethe::core {
namespace {

FeatureSpec ImageSpec(int64_t classes = 10) {
  FeatureSpec s;
  s.shape = {1, 28, 28};
  s.num_classes = classes;
  return s;
}

Architecture Arch(ArchKind kind) {
  Architecture a = testing::SmallMlp();
  a.kind = kind;
  return a;
}

TEST(ModelTest, BuiltInArchitecturesMapImagesToLogits) {
  for (ArchKind kind : {ArchKind::kLogReg, ArchKind::kMlp, ArchKind::kCnn}) {
    Result<torch::jit::Module> m = BuildModel(Arch(kind), 3);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_TRUE(CheckModelFits(*m, ImageSpec()).ok()) << ArchKindName(kind);
    at::Tensor out = Forward(*m, at::rand({5, 1, 28, 28}));
    EXPECT_EQ(out.sizes(), (at::IntArrayRef{5, 10}));
  }
  Architecture bad = Arch(ArchKind::kCnn);
  bad.input_shape = {1, 30, 30};
  EXPECT_EQ(BuildModel(bad, 0).status().code(), Code::kInvalidArgument);
}

// mlp and cnn split into trunk and head (the head re-fit, policy.h) with
// forward = head(trunk); logreg has nothing to split.
TEST(ModelTest, MlpAndCnnSplitIntoTrunkAndHead) {
  at::Tensor x = at::rand({4, 1, 28, 28});
  for (ArchKind kind : {ArchKind::kMlp, ArchKind::kCnn}) {
    Result<torch::jit::Module> m = BuildModel(Arch(kind), 5);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    at::Tensor h = m->get_method("trunk")({x}).toTensor();
    EXPECT_EQ(h.dim(), 2) << ArchKindName(kind);
    at::Tensor split = m->get_method("head")({h}).toTensor();
    EXPECT_TRUE(at::equal(split, Forward(*m, x))) << ArchKindName(kind);
    // The trunk is a real part of the model: not the identity, not the whole.
    EXPECT_NE(h.size(1), 28 * 28) << ArchKindName(kind);
    EXPECT_NE(h.size(1), 10) << ArchKindName(kind);
  }
  Result<torch::jit::Module> lr = BuildModel(Arch(ArchKind::kLogReg), 5);
  ASSERT_TRUE(lr.ok());
  EXPECT_FALSE(lr->find_method("trunk").has_value());
}

TEST(ModelTest, InitialisationIsSeededLikeTorchLinear) {
  torch::jit::Module a = *BuildModel(Arch(ArchKind::kMlp), 5);
  torch::jit::Module b = *BuildModel(Arch(ArchKind::kMlp), 5);
  torch::jit::Module c = *BuildModel(Arch(ArchKind::kMlp), 9);
  std::vector<at::Tensor> pa, pb, pc;
  for (const at::Tensor& t : a.parameters()) pa.push_back(t);
  for (const at::Tensor& t : b.parameters()) pb.push_back(t);
  for (const at::Tensor& t : c.parameters()) pc.push_back(t);
  ASSERT_EQ(pa.size(), 4u);
  EXPECT_TRUE(at::equal(pa[0], pb[0]));
  EXPECT_FALSE(at::equal(pa[0], pc[0]));
  double bound = 1 / std::sqrt(784.0);
  EXPECT_LE(pa[0].abs().max().item<double>(), bound);
  EXPECT_GT(pa[0].abs().max().item<double>(), 0.99 * bound);
  // Re-initialising any module with seed 5 draws what BuildModel drew.
  ASSERT_TRUE(ReinitializeModel(c, 5).ok());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(at::equal(pa[i], pc[i]));
}

TEST(ModelTest, SaveLoadRoundTripKeepsOutputsAndHash) {
  torch::jit::Module m = *BuildModel(Arch(ArchKind::kCnn), 1);
  std::string bytes = *SaveModel(m);
  EXPECT_EQ(Sha256Hex(*SaveModel(m)), Sha256Hex(bytes));
  Result<torch::jit::Module> back = LoadModel(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  at::Tensor x = at::rand({3, 1, 28, 28});
  EXPECT_TRUE(at::equal(Forward(m, x), Forward(*back, x)));
  EXPECT_EQ(Sha256Hex(*SaveModel(*back)), Sha256Hex(bytes));
}

TEST(ModelTest, CorruptBytesGiveAClearError) {
  std::string bytes = *SaveModel(*BuildModel(Arch(ArchKind::kMlp), 1));
  for (std::string bad : {std::string("not a model"), std::string(),
                          bytes.substr(0, bytes.size() / 2)}) {
    Result<torch::jit::Module> r = LoadModel(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_TRUE(r.status().message().find("TorchScript") != std::string::npos ||
                r.status().message().find("empty") != std::string::npos)
        << r.status().message();
  }
}

// Issue 17: a model whose code reads or writes files is refused at load,
// before any of its code runs (__setstate__ runs during loading).
TEST(ModelTest, ModelsThatTouchFilesAreRefusedAtLoad) {
  const std::string secret = testing::TempDir() + "/secret";
  const std::string written = testing::TempDir() + "/written";
  std::ofstream(secret) << "signing key";
  struct Case {
    const char* op;
    std::string code;
  } cases[] = {
      {"aten::from_file",
       "def peek(self) -> Tensor:\n"
       "    return torch.from_file('" +
           secret + "', False, 2)\n"},
      {"aten::save",
       "def leak(self, x: Tensor):\n"
       "    torch.save(x, '" +
           written + "')\n"},
  };
  for (const Case& c : cases) {
    torch::jit::Module m = *BuildModel(testing::SmallMlp(), 0);
    m.define(c.code);
    Result<std::string> bytes = SaveModel(m);
    ASSERT_TRUE(bytes.ok());
    Result<torch::jit::Module> loaded = LoadModel(*bytes);
    ASSERT_FALSE(loaded.ok()) << c.op;
    EXPECT_EQ(loaded.status().code(), Code::kInvalidArgument);
    EXPECT_NE(loaded.status().message().find(c.op), std::string::npos)
        << loaded.status().message();
  }
  EXPECT_FALSE(std::filesystem::exists(written));
  // The same module without that method loads.
  EXPECT_TRUE(LoadModel(*SaveModel(*BuildModel(testing::SmallMlp(), 0))).ok());
}

TEST(ModelTest, ShapeAndClassMismatchesAreInvalidArgument) {
  Engine engine(EngineOptions{});
  std::string mlp = *SaveModel(*BuildModel(Arch(ArchKind::kMlp), 1));
  EXPECT_TRUE(engine.Validate(mlp, ImageSpec()).ok());
  Status classes = engine.Validate(mlp, ImageSpec(5));
  EXPECT_EQ(classes.code(), Code::kInvalidArgument);
  EXPECT_NE(classes.message().find("[2, 5]"), std::string::npos)
      << classes.message();
  FeatureSpec small = ImageSpec();
  small.shape = {1, 14, 14};
  Status shape = engine.Validate(mlp, small);
  EXPECT_EQ(shape.code(), Code::kInvalidArgument);
  EXPECT_NE(shape.message().find("float32[2,1,14,14]"), std::string::npos)
      << shape.message();
  EXPECT_EQ(engine.Validate("junk", ImageSpec()).code(),
            Code::kInvalidArgument);
  // Training refuses a dataset the architecture does not fit.
  testing::SubsetOptions o;
  o.train = 50;
  o.test = 10;
  o.pool2 = true;
  Result<TrainedModel> t = engine.Train(
      Arch(ArchKind::kMlp), testing::QuickRecipe(1), testing::FashionSubset(o));
  EXPECT_EQ(t.status().code(), Code::kInvalidArgument);
}

TEST(ModelTest, CloneIsDeep) {
  torch::jit::Module m = *BuildModel(Arch(ArchKind::kLogReg), 1);
  torch::jit::Module c = *CloneModel(m);
  at::Tensor before = (*m.parameters().begin()).clone();
  {
    at::NoGradGuard g;
    (*c.parameters().begin()).add_(1.0);
  }
  EXPECT_TRUE(at::equal(*m.parameters().begin(), before));
  for (const at::Tensor& p : c.parameters()) EXPECT_TRUE(p.is_leaf());
}

TEST(TrainTest, SameSeedSameBytesOnCpu) {
  testing::SubsetOptions o;
  o.train = 600;
  o.test = 200;
  Dataset d = testing::FashionSubset(o);
  Engine engine(EngineOptions{});
  for (Optimizer opt : {Optimizer::kSgdMomentum, Optimizer::kAdam}) {
    Recipe r = testing::QuickRecipe(5, 7);
    r.optimizer = opt;
    if (opt == Optimizer::kAdam) r.lr = 2e-3;
    Result<TrainedModel> a = engine.Train(testing::SmallMlp(), r, d);
    Result<TrainedModel> b = engine.Train(testing::SmallMlp(), r, d);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(a->model_sha256, b->model_sha256);
    EXPECT_GT(a->test_accuracy, 0.6);  // it did learn
    r.seed = 8;
    EXPECT_NE(engine.Train(testing::SmallMlp(), r, d)->model_sha256,
              a->model_sha256);
  }
}

TEST(TrainTest, LearningRateScheduleWithWarmup) {
  Recipe r;
  r.lr = 0.2;
  r.lr_schedule = LrSchedule::kLinearDecay;
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(r, 0, 10), 0.2);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(r, 5, 10), 0.1);
  r.warmup_fraction = 0.3;  // 3 warm-up steps of 10
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(r, 0, 10), 0.05);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(r, 2, 10), 0.15);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(r, 3, 10), 0.2);  // peak, then decay
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(r, 9, 10), 0.2 / 7);
  r.lr_schedule = LrSchedule::kConstant;
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(r, 1, 10), 0.1);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(r, 9, 10), 0.2);
  for (double bad : {-0.1, 1.0, std::nan("")}) {
    r.warmup_fraction = bad;
    EXPECT_EQ(r.Validate().code(), Code::kInvalidArgument) << bad;
  }
}

// Recipe::max_grad_norm scales a step's gradient down to that norm: with
// plain SGD (no momentum) the first step moves the parameters by exactly
// lr x max_grad_norm when the gradient is larger, by lr x |g| when not.
TEST(TrainTest, GradientClippingBoundsTheStep) {
  Result<torch::jit::Module> built = BuildModel(testing::SmallMlp(), 1);
  ASSERT_TRUE(built.ok());
  at::Tensor x =
      at::rand({16, 1, 28, 28}, at::TensorOptions().dtype(at::kFloat));
  at::Tensor y = at::arange(16, at::kLong).remainder(10);
  auto step_and_norms = [&](double clip) {
    Result<torch::jit::Module> m = CloneModel(*built);
    EXPECT_TRUE(m.ok());
    std::vector<at::Tensor> before;
    for (const at::Tensor& p : m->parameters())
      before.push_back(p.detach().clone());
    Recipe r;
    r.lr = 0.5;
    r.momentum = 0;
    r.epochs = 1;
    r.batch_size = 16;
    r.lr_schedule = LrSchedule::kConstant;
    r.max_grad_norm = clip;
    double grad_norm = 0;
    Status s = RunTrainingLoop(
        *m, std::vector<int64_t>(16, 0), r, {}, [&](const at::Tensor&) {
          at::Tensor loss = at::cross_entropy_loss(Forward(*m, x), y) * 100;
          std::vector<at::Tensor> ps;
          for (const at::Tensor& p : m->parameters()) ps.push_back(p);
          double sq = 0;
          for (const at::Tensor& g :
               torch::autograd::grad({loss}, ps, {}, true)) {
            sq += g.pow(2).sum().item<double>();
          }
          grad_norm = std::sqrt(sq);
          return loss;
        });
    EXPECT_TRUE(s.ok()) << s.ToString();
    double moved = 0;
    size_t i = 0;
    for (const at::Tensor& p : m->parameters()) {
      moved += (p.detach() - before[i++]).pow(2).sum().item<double>();
    }
    return std::make_pair(std::sqrt(moved), grad_norm);
  };
  auto [free_move, g] = step_and_norms(0);
  ASSERT_GT(g, 2.0);  // the scaled loss makes the gradient large
  EXPECT_NEAR(free_move, 0.5 * g, 1e-3 * g);
  auto [clipped_move, g2] = step_and_norms(1.0);
  EXPECT_DOUBLE_EQ(g2, g);
  EXPECT_NEAR(clipped_move, 0.5, 1e-3);
  auto [loose_move, g3] = step_and_norms(10 * g);  // above the norm: no effect
  EXPECT_NEAR(loose_move, free_move, 1e-6 * g3);
  Recipe bad;
  for (double v : {-1.0, std::nan(""), HUGE_VAL}) {
    bad.max_grad_norm = v;
    EXPECT_EQ(bad.Validate().code(), Code::kInvalidArgument) << v;
  }
}

TEST(TrainTest, DivergenceAbortsWithoutAModel) {
  testing::SubsetOptions o;
  o.train = 300;
  o.test = 10;
  Dataset d = testing::FashionSubset(o);
  Recipe r = testing::QuickRecipe(2);
  r.lr = 1e6;
  r.lr_schedule = LrSchedule::kConstant;
  Result<TrainedModel> t =
      Engine(EngineOptions{}).Train(testing::SmallMlp(), r, d);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kAborted);
  EXPECT_NE(t.status().message().find("diverged"), std::string::npos);
}

TEST(RuntimeTest, SizesOpenBlasPoolToo) {
  // LibTorch's own count does not reach OpenBLAS behind libblas.so.3.
  InitRuntime(1);
  const int one = BlasThreads();
  InitRuntime(2);
  const int two = BlasThreads();
  if (one == -1) {
    EXPECT_EQ(two, -1);  // another BLAS: nothing to size
  } else {
    EXPECT_EQ(one, 1);
    EXPECT_EQ(two, 2);
  }
}

TEST(RuntimeTest, ParsesDevices) {
  InitRuntime(2);
  EXPECT_EQ(ParseDevice("cpu")->ToString(), "cpu");
  EXPECT_TRUE(ParseDevice("auto").ok());
  EXPECT_EQ(ParseDevice("tpu").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseDevice("cuda:x").status().code(), Code::kInvalidArgument);
  Result<Device> cuda = ParseDevice("cuda:0");
  EXPECT_TRUE(cuda.ok() || cuda.status().code() == Code::kFailedPrecondition);
}

}  // namespace
}  // namespace lethe::core

// Certified removal (Guo et al.) on logistic regression over 14x14
// Fashion-MNIST features.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "lethe/core/engine.h"
#include "lethe/core/model.h"
#include "lethe/core/newton.h"
#include "test_util.h"

namespace lethe::core {
namespace {

Architecture LogReg() {
  Architecture a;
  a.kind = ArchKind::kLogReg;
  a.input_shape = {196};
  a.num_classes = 10;
  return a;
}

struct Fixture {
  Dataset data;
  DeviceData dev;
  Partition partition;
  torch::jit::Module model;
  NewtonState state;
};

Fixture Make(const NewtonParams& params) {
  Fixture f;
  testing::SubsetOptions o;
  o.pool2 = true;
  f.data = testing::FashionSubset(o);
  f.dev = *ToDevice(f.data, Device{});
  f.partition = *PartitionBySubjects(f.data, testing::TrainSubjects(10, 2));
  f.model = *BuildModel(LogReg(), 0);
  Result<NewtonState> s = TrainCertified(
      f.model, f.dev, IndicesOfSplit(f.data, Split::kTrain), params, 42);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  f.state = *s;
  return f;
}

double TestAccuracy(torch::jit::Module& m, const Fixture& f) {
  return Evaluate(m, f.dev, f.partition.test)->accuracy();
}

TEST(NewtonTest, RemovalCutsResidualUnderBoundAndMatchesRetraining) {
  NewtonParams params;
  params.lambda = 0.1;
  params.sigma = 1.0;
  params.epsilon = 10;  // budget ~2.3: room for this removal's bound (~1.9)
  Fixture f = Make(params);
  const std::vector<int64_t>& kept = f.partition.retain;
  double before = *GradientResidual(f.model, f.dev, kept, f.state);
  Result<NewtonRemoval> r = NewtonRemove(f.model, f.dev, f.partition, f.state);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_FALSE(r->retrain_needed) << r->bound << " vs " << r->budget;
  double after = *GradientResidual(r->model, f.dev, kept, r->state);
  std::printf("residual %.4g -> %.4g, bound %.4g, budget %.4g\n", before,
              after, r->bound, r->budget);
  EXPECT_GE(before / after, 100.0);
  EXPECT_LE(after, r->bound);
  EXPECT_DOUBLE_EQ(r->state.cumulative_bound, r->bound);
  EXPECT_EQ(r->state.removals, 40);

  torch::jit::Module retrained = *BuildModel(LogReg(), 0);
  ASSERT_TRUE(TrainCertified(retrained, f.dev, kept, params, 42).ok());
  double ta_newton = TestAccuracy(r->model, f);
  double ta_retrain = TestAccuracy(retrained, f);
  std::printf("TA newton %.4f retrain %.4f original %.4f\n", ta_newton,
              ta_retrain, TestAccuracy(f.model, f));
  EXPECT_NEAR(ta_newton, ta_retrain, 0.005);
  EXPECT_GT(ta_retrain, 0.6);
}

TEST(NewtonTest, StateRoundTripsAndRejectsGarbage) {
  NewtonState s;
  s.noise_seed = 77;
  s.cumulative_bound = 0.125;
  s.removals = 12;
  s.params.sigma = 3.5;
  Result<NewtonState> back = ParseNewtonState(SerializeNewtonState(s));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->noise_seed, 77u);
  EXPECT_EQ(back->cumulative_bound, 0.125);
  EXPECT_EQ(back->removals, 12);
  EXPECT_EQ(back->params.sigma, 3.5);
  EXPECT_FALSE(ParseNewtonState("lethe-newton-v1\nsigma=1\n").ok());
  EXPECT_FALSE(ParseNewtonState("hello").ok());
}

TEST(NewtonTest, BudgetExceededAnswersRetrainNeededAndEscalates) {
  NewtonParams tight;
  tight.sigma = 1e-6;  // budget ~2e-7: any removal exceeds it
  Engine engine(EngineOptions{});
  testing::SubsetOptions o;
  o.pool2 = true;
  o.train = 600;
  o.test = 200;
  Dataset data = testing::FashionSubset(o);
  Result<TrainedModel> t = engine.TrainCertified(LogReg(), tight, 5, data);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  UnlearnRequest req;
  req.model_bytes = t->model_bytes;
  req.dataset = &data;
  req.forget_subjects = testing::TrainSubjects(0, 1);
  req.newton_state = t->newton_state;
  req.policy.chain = {Method::kNewton, Method::kRetrain};
  Result<UnlearnOutcome> r = engine.Unlearn(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE(r->report.attempts[0].reason.find("retrain needed"),
            std::string::npos)
      << r->report.attempts[0].reason;
  EXPECT_EQ(r->report.method, "retrain");
  // The retrained model is certified-trained afresh: the bound restarts.
  Result<NewtonState> s = ParseNewtonState(r->newton_state);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->cumulative_bound, 0);
  EXPECT_EQ(s->noise_seed, 6u);
  EXPECT_GT(r->report.after.ta, 0.55);
}

TEST(NewtonTest, EngineAcceptsCertifiedRemovalWithinBudget) {
  Engine engine(EngineOptions{});
  testing::SubsetOptions o;
  o.pool2 = true;
  o.train = 600;
  o.test = 200;
  Dataset data = testing::FashionSubset(o);
  NewtonParams loose;
  loose.epsilon = 100;  // one 20-record batch out of 600 needs a loose budget
  Result<TrainedModel> t = engine.TrainCertified(LogReg(), loose, 5, data);
  ASSERT_TRUE(t.ok());
  UnlearnRequest req;
  req.model_bytes = t->model_bytes;
  req.dataset = &data;
  req.forget_subjects = testing::TrainSubjects(0, 1);
  req.newton_state = t->newton_state;
  req.policy.chain = {Method::kNewton, Method::kRetrain};
  req.policy.max_mia_auc = 1.0;
  Result<UnlearnOutcome> r = engine.Unlearn(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->report.method, "newton") << ReportToJson(r->report);
  EXPECT_EQ(r->report.guarantee, "certified");
  EXPECT_GT(r->report.newton_bound, 0);
  Result<NewtonState> s = ParseNewtonState(r->newton_state);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->removals, 20);
  EXPECT_DOUBLE_EQ(s->cumulative_bound, r->report.newton_bound);
  // A non-linear model is refused by newton with a clear reason.
  Architecture mlp = testing::SmallMlp({196});
  torch::jit::Module m = *BuildModel(mlp, 0);
  DeviceData dev = *ToDevice(data, Device{});
  Result<NewtonRemoval> bad =
      NewtonRemove(m, dev, *PartitionBySubjects(data, {"train-0"}), *s);
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  // Two parameters of the right shapes, but a non-linear forward.
  torch::jit::Module relu("__torch__.test.ReluLinear");
  relu.register_parameter("w", at::zeros({10, 196}), false);
  relu.register_parameter("b", at::ones({10}), false);
  relu.define(R"(
def forward(self, x):
    return torch.relu(torch.linear(torch.flatten(x, 1), self.w, self.b) - 2.0)
)");
  Result<NewtonRemoval> nonlinear =
      NewtonRemove(relu, dev, *PartitionBySubjects(data, {"train-0"}), *s);
  EXPECT_EQ(nonlinear.status().code(), Code::kInvalidArgument);
  EXPECT_NE(nonlinear.status().message().find("linear(flatten(x))"),
            std::string::npos)
      << nonlinear.status().message();
}

}  // namespace
}  // namespace lethe::core

// Certified removal (Guo et al.) on logistic regression over 14x14
// Fashion-MNIST features.
#include "lethe/core/newton.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <gtest/gtest.h>

#include "lethe/core/engine.h"
#include "lethe/core/model.h"
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
  at::Tensor noise;  // b, handed out by TrainCertified to measure residuals
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
      f.model, f.dev, IndicesOfSplit(f.data, Split::kTrain), params, &f.noise);
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
  // Budget ~45.6: room for this removal's bound (~20: R = max |x_i| is ~10
  // for 196 pooled pixels and the bias).
  params.epsilon = 200;
  Fixture f = Make(params);
  const std::vector<int64_t>& kept = f.partition.retain;
  double before =
      *GradientResidual(f.model, f.dev, kept, params.lambda, f.noise);
  Result<NewtonRemoval> r = NewtonRemove(f.model, f.dev, f.partition, f.state);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_FALSE(r->retrain_needed) << r->bound << " vs " << r->budget;
  double after =
      *GradientResidual(r->model, f.dev, kept, params.lambda, f.noise);
  std::printf("residual %.4g -> %.4g, bound %.4g, budget %.4g\n", before, after,
              r->bound, r->budget);
  EXPECT_GE(before / after, 100.0);
  EXPECT_LE(after, r->bound);
  // Training left the float32 weights' own residual (tiny) as the start.
  EXPECT_GT(f.state.cumulative_bound, 0);
  EXPECT_LT(f.state.cumulative_bound, 1e-3);
  EXPECT_DOUBLE_EQ(r->state.cumulative_bound,
                   f.state.cumulative_bound + r->bound);
  EXPECT_EQ(r->state.removals, 40);

  // Retraining with the same b: what the step approximates.
  torch::jit::Module retrained = *BuildModel(LogReg(), 0);
  ASSERT_TRUE(
      TrainCertifiedWithNoise(retrained, f.dev, kept, params, f.noise).ok());
  double ta_newton = TestAccuracy(r->model, f);
  double ta_retrain = TestAccuracy(retrained, f);
  std::printf("TA newton %.4f retrain %.4f original %.4f\n", ta_newton,
              ta_retrain, TestAccuracy(f.model, f));
  EXPECT_NEAR(ta_newton, ta_retrain, 0.005);
  EXPECT_GT(ta_retrain, 0.6);
}

TEST(NewtonTest, StateRoundTripsAndRejectsGarbage) {
  NewtonState s;
  s.cumulative_bound = 0.125;
  s.removals = 12;
  s.params.sigma = 3.5;
  const std::string text = SerializeNewtonState(s);
  EXPECT_EQ(text.find("noise"), std::string::npos) << text;
  EXPECT_EQ(text.find("seed"), std::string::npos) << text;
  Result<NewtonState> back = ParseNewtonState(text);
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->public_noise);
  EXPECT_EQ(back->cumulative_bound, 0.125);
  EXPECT_EQ(back->removals, 12);
  EXPECT_EQ(back->params.sigma, 3.5);
  EXPECT_FALSE(back->has_cache());
  EXPECT_FALSE(ParseNewtonState("lethe-newton-v1\nsigma=1\n").ok());
  EXPECT_FALSE(ParseNewtonState("hello").ok());
  // Version 1 (text only, written before the cache) still reads.
  Result<NewtonState> v1 = ParseNewtonState(
      "lethe-newton-v1\nlambda=0.1\nsigma=2\nepsilon=1\ndelta=0.0001\n"
      "max_iterations=30\nnoise_seed=5\ncumulative_bound=0.5\nremovals=3\n");
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(v1->params.sigma, 2);
  EXPECT_EQ(v1->removals, 3);
  EXPECT_FALSE(v1->has_cache());
  // Before v3, b came from the (public) recipe seed.
  EXPECT_TRUE(v1->public_noise);
  Result<NewtonState> v2 = ParseNewtonState(
      "lethe-newton-v2\nlambda=0.1\nsigma=2\nepsilon=1\ndelta=0.0001\n"
      "max_iterations=30\nmax_cache_bytes=0\nmeasure_residual=1\n"
      "noise_seed=5\ncumulative_bound=0.5\nremovals=3\nmax_row_norm=1\n"
      "cache=0,0\n\n");
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_TRUE(v2->public_noise);
  EXPECT_EQ(v2->cumulative_bound, 0.5);
  EXPECT_EQ(SerializeNewtonState(*v2).find("noise_seed"), std::string::npos);
  // With a cache: the float64 values come back bit for bit; a truncated
  // cache is refused.
  s.hessians = at::randn({3, 4, 4}, at::kDouble);
  s.hessian_at = at::randn({3, 4}, at::kDouble);
  s.gram = at::randn({4, 4}, at::kDouble);
  s.max_row_norm = 1.25;
  std::string bytes = SerializeNewtonState(s);
  Result<NewtonState> cached = ParseNewtonState(bytes);
  ASSERT_TRUE(cached.ok()) << cached.status().ToString();
  ASSERT_TRUE(cached->has_cache());
  EXPECT_TRUE(at::equal(cached->hessians, s.hessians));
  EXPECT_TRUE(at::equal(cached->hessian_at, s.hessian_at));
  EXPECT_TRUE(at::equal(cached->gram, s.gram));
  EXPECT_EQ(cached->max_row_norm, 1.25);
  EXPECT_EQ(SerializeNewtonState(*cached), bytes);
  Result<NewtonState> cut = ParseNewtonState(bytes.substr(0, bytes.size() - 8));
  EXPECT_EQ(cut.status().code(), Code::kInvalidArgument);
  EXPECT_NE(cut.status().message().find("cache"), std::string::npos);
}

TEST(NewtonTest, CachedRemovalEqualsRecomputedAndStaysSoundWhenStale) {
  NewtonParams params;
  params.epsilon = 1e6;  // this test is about the step and bound, not budget
  Fixture f = Make(params);
  ASSERT_TRUE(f.state.has_cache());  // 10 x 197^2 float64: 3.4 MB
  NewtonState plain = f.state;
  plain.hessians = plain.hessian_at = plain.gram = at::Tensor();
  Result<NewtonRemoval> cached =
      NewtonRemove(f.model, f.dev, f.partition, f.state);
  Result<NewtonRemoval> recomputed =
      NewtonRemove(f.model, f.dev, f.partition, plain);
  ASSERT_TRUE(cached.ok() && recomputed.ok());
  ASSERT_FALSE(cached->retrain_needed);
  // Same Hessians (the cache minus the forget set = the retained set's), so
  // the same step and bound up to float64 rounding.
  auto weights = [](const torch::jit::Module& m) {
    std::vector<at::Tensor> out;
    for (const at::Tensor& p : m.parameters()) out.push_back(p);
    return out;
  };
  std::vector<at::Tensor> a = weights(cached->model),
                          b = weights(recomputed->model);
  ASSERT_EQ(a.size(), 2u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(at::allclose(a[i], b[i], 1e-5, 1e-6)) << i;
  }
  // (b is fresh every run; the rounding of H - sum_F differs from the
  // recomputed H' by up to ~1e-6 relative, depending on the draw.)
  EXPECT_NEAR(cached->bound, recomputed->bound, 1e-5 * recomputed->bound);
  EXPECT_TRUE(cached->state.has_cache());
  EXPECT_FALSE(recomputed->state.has_cache());

  // A second removal uses the now stale Hessian (taken at training's
  // optimum): its bound gains the drift term, and the true residual of the
  // final model on the final data stays under the summed bounds.
  Partition second = *PartitionBySubjects(f.data, [] {
    std::vector<std::string> s = testing::TrainSubjects(10, 2);
    for (const std::string& x : testing::TrainSubjects(30, 3)) s.push_back(x);
    return s;
  }());
  Partition step2 = second;
  step2.forget.clear();
  for (int64_t row : second.forget) {
    if (std::find(f.partition.forget.begin(), f.partition.forget.end(), row) ==
        f.partition.forget.end()) {
      step2.forget.push_back(row);
    }
  }
  ASSERT_EQ(step2.forget.size(), 60u);
  // The model no longer stands for the first 40 records: a partition that
  // still counts them is refused, not stepped with a bound that ignores them.
  EXPECT_EQ(cached->state.rows, f.state.rows - 40);
  Result<NewtonRemoval> stale =
      NewtonRemove(cached->model, f.dev, second, cached->state);
  EXPECT_EQ(stale.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(stale.status().message().find("retrain needed"), std::string::npos);
  Result<NewtonRemoval> r2 =
      NewtonRemove(cached->model, f.dev, step2, cached->state);
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  ASSERT_FALSE(r2->retrain_needed);
  double residual = *GradientResidual(r2->model, f.dev, second.retain,
                                      params.lambda, f.noise);
  std::printf("two removals: bounds %.4g + %.4g, true residual %.4g\n",
              cached->bound, r2->bound, residual);
  EXPECT_LE(residual, r2->state.cumulative_bound);
  EXPECT_EQ(r2->state.removals, 100);
}

TEST(NewtonTest, MeasuredChangeCarriesOnWhereTheBoundsWouldStop) {
  NewtonParams params;
  params.epsilon = 5;  // budget ~1.14: under the step's bound (~20), above
                       // its true residual (~0.15)
  Fixture f = Make(params);
  NewtonState no_measure = f.state;
  no_measure.params.measure_residual = false;
  Result<NewtonRemoval> refused =
      NewtonRemove(f.model, f.dev, f.partition, no_measure);
  ASSERT_TRUE(refused.ok());
  EXPECT_TRUE(refused->retrain_needed);
  EXPECT_FALSE(refused->measured);

  Result<NewtonRemoval> r = NewtonRemove(f.model, f.dev, f.partition, f.state);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_FALSE(r->retrain_needed) << r->bound << " / " << r->measured_bound;
  EXPECT_TRUE(r->measured);
  EXPECT_GT(r->bound, r->budget);
  // The true residual (which needs b) of the weights the model stores
  // (float32), as published: the measured bound, taken without b, holds it
  // and exceeds it by at most twice the residual training started from.
  double truth = *GradientResidual(r->model, f.dev, f.partition.retain,
                                   params.lambda, f.noise);
  std::printf("measured bound %.6g, true residual %.6g, start %.3g\n",
              r->measured_bound, truth, f.state.cumulative_bound);
  EXPECT_GE(r->measured_bound, truth * (1 - 1e-9));
  EXPECT_LE(r->measured_bound, truth + 2 * f.state.cumulative_bound + 1e-9);
  EXPECT_DOUBLE_EQ(r->state.cumulative_bound, r->measured_bound);
  EXPECT_LE(r->measured_bound, r->budget);
  // The state round-trips its settings.
  EXPECT_TRUE(ParseNewtonState(SerializeNewtonState(r->state))
                  ->params.measure_residual);
  EXPECT_FALSE(ParseNewtonState(SerializeNewtonState(no_measure))
                   ->params.measure_residual);
}

TEST(NewtonTest, RandomFeatureHeadIsCertifiedCheaplyAndMatchesRetraining) {
  testing::SubsetOptions o;
  o.train = 3000;
  o.test = 1000;
  Dataset data = testing::FashionSubset(o);
  DeviceData dev = *ToDevice(data, Device{});
  Architecture a;
  a.kind = ArchKind::kRfLogReg;
  a.input_shape = {1, 28, 28};
  a.hidden = {128};
  torch::jit::Module model = *BuildModel(a, 3);
  // The frozen features are buffers: retraining's reinitialisation keeps them.
  torch::jit::Module reinit = *CloneModel(model);
  ASSERT_TRUE(ReinitializeModel(reinit, 9).ok());
  EXPECT_TRUE(at::equal(reinit.attr("rf_proj").toTensor(),
                        model.attr("rf_proj").toTensor()));
  EXPECT_TRUE(at::equal(reinit.attr("rf_offset").toTensor(),
                        model.attr("rf_offset").toTensor()));
  EXPECT_FALSE(at::equal(reinit.attr("out_weight").toTensor(),
                         model.attr("out_weight").toTensor()));
  // 3,000 records: one 20-record subject fits the budget at lambda 1e-2 and
  // sigma 10 (budget 2.28); bounds shrink with n (the benchmark's 60,000).
  NewtonParams params;
  params.lambda = 1e-2;
  params.sigma = 10;
  at::Tensor noise;
  Result<NewtonState> s = TrainCertified(
      model, dev, IndicesOfSplit(data, Split::kTrain), params, &noise);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(s->has_cache());
  // Unit-norm embedding (float32) and the bias's 1.
  EXPECT_NEAR(s->max_row_norm, std::sqrt(2.0), 1e-6);
  Partition p = *PartitionBySubjects(data, testing::TrainSubjects(4, 1));
  // Round trip through the bytes a worker stores.
  NewtonState state = *ParseNewtonState(SerializeNewtonState(*s));
  torch::jit::Module loaded = *LoadModel(*SaveModel(model));
  double before =
      *GradientResidual(loaded, dev, p.retain, params.lambda, noise);
  Result<NewtonRemoval> r = NewtonRemove(loaded, dev, p, state);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_FALSE(r->retrain_needed) << r->bound << " vs budget " << r->budget;
  double after =
      *GradientResidual(r->model, dev, p.retain, params.lambda, noise);
  std::printf("rf_logreg: residual %.4g -> %.4g, bound %.4g, budget %.4g\n",
              before, after, r->bound, r->budget);
  EXPECT_GE(before / after, 100.0);
  EXPECT_LE(after, r->bound);
  torch::jit::Module retrained = *CloneModel(model);
  ASSERT_TRUE(
      TrainCertifiedWithNoise(retrained, dev, p.retain, params, noise).ok());
  double ta_newton = Evaluate(r->model, dev, p.test)->accuracy();
  double ta_retrain = Evaluate(retrained, dev, p.test)->accuracy();
  std::printf("rf_logreg TA newton %.4f retrain %.4f\n", ta_newton, ta_retrain);
  EXPECT_NEAR(ta_newton, ta_retrain, 0.005);
  // 10 classes: chance is 0.1. sigma 10 on 3,000 records moves TA with the
  // draw of b (0.60-0.64 over a dozen runs).
  EXPECT_GT(ta_retrain, 0.5);
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
  // The retrained model is certified-trained afresh: the bound restarts
  // (from the float32 weights' own residual), with a new secret noise.
  Result<NewtonState> s = ParseNewtonState(r->newton_state);
  ASSERT_TRUE(s.ok());
  EXPECT_LT(s->cumulative_bound, 1e-3);
  EXPECT_FALSE(s->public_noise);
  EXPECT_GT(r->report.after.ta, 0.55);
}

TEST(NewtonTest, ModelWithSeedDrawnNoiseIsRetrainedNotStepped) {
  // A state written before lethe-newton-v3: its b came from the public
  // recipe seed. Its model is no longer certified; the chain retrains it.
  Engine engine(EngineOptions{});
  testing::SubsetOptions o;
  o.pool2 = true;
  o.train = 600;
  o.test = 200;
  Dataset data = testing::FashionSubset(o);
  NewtonParams loose;
  loose.epsilon = 1000;  // the step would fit the budget
  Result<TrainedModel> t = engine.TrainCertified(LogReg(), loose, 5, data);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  std::string old = t->newton_state;
  ASSERT_EQ(old.rfind("lethe-newton-v3\n", 0), 0u);
  old.replace(0, 16, "lethe-newton-v2\n");
  old.insert(old.find("cumulative_bound="), "noise_seed=5\n");
  ASSERT_TRUE(ParseNewtonState(old).ok());
  UnlearnRequest req;
  req.model_bytes = t->model_bytes;
  req.dataset = &data;
  req.forget_subjects = testing::TrainSubjects(0, 1);
  req.newton_state = old;
  req.policy.chain = {Method::kNewton, Method::kRetrain};
  Result<UnlearnOutcome> r = engine.Unlearn(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->report.attempts.size(), 2u);
  EXPECT_EQ(r->report.attempts[0].outcome, "error");
  EXPECT_NE(r->report.attempts[0].reason.find("recipe seed, which is public"),
            std::string::npos)
      << r->report.attempts[0].reason;
  EXPECT_EQ(r->report.method, "retrain");
  Result<NewtonState> s = ParseNewtonState(r->newton_state);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->public_noise);
}

TEST(NewtonTest, EngineAcceptsCertifiedRemovalWithinBudget) {
  Engine engine(EngineOptions{});
  testing::SubsetOptions o;
  o.pool2 = true;
  o.train = 600;
  o.test = 200;
  Dataset data = testing::FashionSubset(o);
  NewtonParams loose;
  // One 20-record batch out of 600 on raw pooled pixels (bound ~30) needs a
  // loose budget.
  loose.epsilon = 1000;
  Result<TrainedModel> t = engine.TrainCertified(LogReg(), loose, 5, data);
  ASSERT_TRUE(t.ok());
  UnlearnRequest req;
  req.model_bytes = t->model_bytes;
  req.dataset = &data;
  req.forget_subjects = testing::TrainSubjects(0, 1);
  req.newton_state = t->newton_state;
  req.policy.chain = {Method::kNewton, Method::kRetrain};
  // The gates are not what this test checks. On 200 test records a record
  // is half a point, and newton's test accuracy can land exactly on the
  // default 1.5-point drop (0.715 to 0.700 in one fresh-clone CI run, where
  // the rounding of the difference failed the gate; other runs pass).
  req.policy.gate_alpha = 0;
  req.policy.max_test_acc_drop = 5.0;
  Result<UnlearnOutcome> r = engine.Unlearn(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->report.method, "newton") << ReportToJson(r->report);
  EXPECT_EQ(r->report.guarantee, "certified");
  EXPECT_GT(r->report.newton_bound, 0);
  Result<NewtonState> s = ParseNewtonState(r->newton_state);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->removals, 20);
  EXPECT_DOUBLE_EQ(s->cumulative_bound, r->report.newton_cumulative_bound);
  EXPECT_GE(s->cumulative_bound, r->report.newton_bound);
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

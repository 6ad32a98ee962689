// The policy chain: escalation on errors, divergence and failed gates, time
// budget, reference retraining, request errors.
#include "lethe/core/engine.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <gtest/gtest.h>

#include "lethe/core/model.h"
#include "lethe/core/report.h"
#include "lethe/core/sha256.h"
#include "test_util.h"

namespace lethe::core {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::SubsetOptions o;
    o.train = 800;
    o.test = 300;
    data_ = new Dataset(testing::FashionSubset(o));
    Result<TrainedModel> m =
        Engine(EngineOptions{})
            .Train(testing::SmallMlp(), testing::QuickRecipe(3), *data_);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = new std::string(m->model_bytes);
  }

  UnlearnRequest Request(std::vector<Method> chain) const {
    UnlearnRequest r;
    r.model_bytes = *model_;
    r.dataset = data_;
    r.forget_subjects = testing::TrainSubjects(2, 3);
    r.recipe = testing::QuickRecipe(3);
    r.trained_by_lethe = true;  // Engine::Train made it
    r.policy.chain = std::move(chain);
    // finetune's 5 epochs on this 3-epoch recipe cost more than a retrain;
    // these tests exercise the methods, CostRule* tests the skipping.
    r.policy.max_cost_fraction = 100;
    // Methods run once as configured; Adaptive* tests the rounds.
    r.policy.adaptive_budget = 0;
    return r;
  }

  // A gate that passes whatever the approximate result: the calibrated check
  // off (gate_test.cc tests it) and the rest open.
  static void OpenGate(Policy& p) {
    p.gate_alpha = 0;
    p.max_mia_auc = 1.0;
    p.max_test_acc_drop = 100;
    p.max_forget_acc_excess = 100;
  }

  static Dataset* data_;
  static std::string* model_;
  Engine engine_{EngineOptions{}};
};

Dataset* EngineTest::data_ = nullptr;
std::string* EngineTest::model_ = nullptr;

TEST_F(EngineTest, DivergingMethodEscalatesAndNeverYieldsItsModel) {
  UnlearnRequest req = Request({Method::kFinetune, Method::kRetrain});
  req.policy.params.finetune.lr = 1e12;
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Report& rep = r->report;
  ASSERT_EQ(rep.attempts.size(), 2u);
  EXPECT_EQ(rep.attempts[0].outcome, "error");
  EXPECT_EQ(rep.attempts[0].failure, AttemptFailure::kError);
  EXPECT_EQ(rep.attempts[1].failure, AttemptFailure::kNone);
  EXPECT_NE(rep.attempts[0].reason.find("diverged"), std::string::npos)
      << rep.attempts[0].reason;
  EXPECT_TRUE(rep.ok);
  EXPECT_EQ(rep.method, "retrain");
  EXPECT_EQ(rep.guarantee, "exact");
  EXPECT_EQ(r->model_sha256, Sha256Hex(r->model_bytes));
  // The produced model is a real model: finite, loads, fits.
  EXPECT_TRUE(engine_.Validate(r->model_bytes, data_->spec()).ok());
  torch::jit::Module m = *LoadModel(r->model_bytes);
  for (const at::Tensor& p : m.parameters()) {
    EXPECT_TRUE(at::isfinite(p).all().item<bool>());
  }
}

TEST_F(EngineTest, FailedGateEscalatesToExactMethod) {
  UnlearnRequest req = Request({Method::kFinetune, Method::kRetrain});
  OpenGate(req.policy);
  req.policy.max_mia_auc = 0.0;  // no approximate result can pass
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->report.attempts[0].outcome, "failed_gate");
  EXPECT_EQ(r->report.attempts[0].failure, AttemptFailure::kMiaAuc);
  EXPECT_NE(r->report.attempts[0].reason.find("MIA AUC"), std::string::npos);
  EXPECT_NE(ReportToJson(r->report).find("\"failure\":\"mia_auc\""),
            std::string::npos);
  EXPECT_TRUE(r->report.attempts[0].has_metrics);
  EXPECT_EQ(r->report.method, "retrain");
}

TEST_F(EngineTest, ForgetSetStillAboveTestAccuracyFailsTheGate) {
  UnlearnRequest req = Request({Method::kFinetune, Method::kRetrain});
  OpenGate(req.policy);
  // Forget accuracy can never be 100 points below test accuracy.
  req.policy.max_forget_acc_excess = -100;
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->report.attempts.size(), 2u);
  EXPECT_EQ(r->report.attempts[0].outcome, "failed_gate");
  EXPECT_EQ(r->report.attempts[0].failure, AttemptFailure::kForgetAccuracy);
  EXPECT_NE(r->report.attempts[0].reason.find(
                "forget accuracy exceeds test accuracy"),
            std::string::npos)
      << r->report.attempts[0].reason;
  EXPECT_EQ(r->report.method, "retrain");
}

TEST_F(EngineTest, TestAccuracyDropFailsTheGate) {
  UnlearnRequest req = Request({Method::kFinetune, Method::kRetrain});
  OpenGate(req.policy);
  // Validation accuracy can never rise by 100 points.
  req.policy.max_test_acc_drop = -100;
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->report.attempts.size(), 2u);
  EXPECT_EQ(r->report.attempts[0].outcome, "failed_gate");
  EXPECT_EQ(r->report.attempts[0].failure, AttemptFailure::kTestAccuracy);
  EXPECT_NE(r->report.attempts[0].reason.find("validation accuracy dropped"),
            std::string::npos)
      << r->report.attempts[0].reason;
  EXPECT_EQ(r->report.method, "retrain");
}

TEST_F(EngineTest, AdaptiveRoundThatCostsMoreThanTheBudgetIsSkipped) {
  UnlearnRequest req = Request({Method::kFinetune, Method::kRetrain});
  req.policy = Policy{};  // the default chain, gate and adaptive budget
  // One epoch over the retain set against the recipe's 3: a third of a
  // retrain, over the default budget of a quarter.
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Report& rep = r->report;
  ASSERT_EQ(rep.attempts.size(), 2u);
  EXPECT_EQ(rep.attempts[0].outcome, "skipped");
  EXPECT_EQ(rep.attempts[0].failure, AttemptFailure::kCost);
  EXPECT_EQ(rep.attempts[0].reason,
            "one round costs 0.333 of a retrain > adaptive_budget 0.25");
  EXPECT_EQ(rep.method, "retrain");
}

TEST_F(EngineTest, AdaptiveRoundsContinueUntilTheBudgetThenEscalate) {
  UnlearnRequest req = Request({Method::kFinetune, Method::kRetrain});
  OpenGate(req.policy);
  req.policy.max_mia_auc = 0.0;           // no round can pass
  req.policy.adaptive_budget = 0.7;       // two rounds of a third, not three
  req.policy.params.finetune.epochs = 5;  // not used by rounds
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Report& rep = r->report;
  ASSERT_EQ(rep.attempts.size(), 3u) << ReportToJson(rep);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(rep.attempts[i].method, "finetune");
    EXPECT_EQ(rep.attempts[i].round, i + 1);
    EXPECT_EQ(rep.attempts[i].outcome, "failed_gate");
    EXPECT_EQ(rep.attempts[i].failure, AttemptFailure::kMiaAuc);
    EXPECT_TRUE(rep.attempts[i].has_metrics);
  }
  // Each round continues from the last: the second differs from the first.
  EXPECT_NE(rep.attempts[0].metrics.mia_auc, rep.attempts[1].metrics.mia_auc);
  EXPECT_EQ(rep.attempts[2].method, "retrain");
  EXPECT_EQ(rep.attempts[2].round, 0);
  EXPECT_EQ(rep.method, "retrain");
  EXPECT_NE(ReportToJson(rep).find("\"round\":2"), std::string::npos);
}

TEST_F(EngineTest, AdaptiveRoundsStopAtTheFirstAcceptedResult) {
  UnlearnRequest req = Request({Method::kNegGradPlus, Method::kRetrain});
  OpenGate(req.policy);
  req.policy.adaptive_budget = 5;
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->report.attempts.size(), 1u);
  EXPECT_EQ(r->report.attempts[0].round, 1);
  EXPECT_EQ(r->report.attempts[0].outcome, "accepted");
  EXPECT_EQ(r->report.method, "neggrad_plus");
  EXPECT_EQ(r->report.guarantee, "approximate");
}

TEST_F(EngineTest, CalibratedGateNeedsValidationData) {
  // The same training records with 60 test records (3 subjects of 20): at
  // most 60 validation records, fewer than the check's minimum of 100.
  testing::SubsetOptions o;
  o.train = 800;
  o.test = 60;
  const Dataset small = testing::FashionSubset(o);
  UnlearnRequest req = Request({Method::kFinetune, Method::kRetrain});
  req.dataset = &small;
  req.policy.gate_alpha = 0.01;
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Report& rep = r->report;
  EXPECT_EQ(rep.attempts[0].failure, AttemptFailure::kCalibration);
  EXPECT_NE(rep.attempts[0].reason.find("too little validation data"),
            std::string::npos)
      << rep.attempts[0].reason;
  EXPECT_FALSE(rep.calibration_before.available);
  EXPECT_EQ(rep.method, "retrain");
}

TEST_F(EngineTest, CostRuleSkipsCostlyApproximateMethodForExactOne) {
  UnlearnRequest req = Request({Method::kFinetune, Method::kRetrain});
  req.policy = Policy{};  // the default chain, gate and max_cost_fraction
  req.policy.adaptive_budget = 0;  // the rule applies to single runs
  // 5 epochs over the retain set against the recipe's 3: 5/3 of a retrain.
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Report& rep = r->report;
  ASSERT_EQ(rep.attempts.size(), 2u);
  EXPECT_EQ(rep.attempts[0].method, "finetune");
  EXPECT_EQ(rep.attempts[0].outcome, "skipped");
  EXPECT_EQ(rep.attempts[0].failure, AttemptFailure::kCost);
  EXPECT_EQ(rep.attempts[0].reason,
            "estimated cost 1.67 of a retrain > max_cost_fraction 0.5");
  EXPECT_FALSE(rep.attempts[0].has_metrics);
  EXPECT_EQ(rep.method, "retrain");
  EXPECT_EQ(rep.guarantee, "exact");
}

TEST_F(EngineTest, CostRuleRunsCheapMethodsAndLastResorts) {
  // 1 epoch of 3 (0.33) is under the default 0.5: finetune runs.
  UnlearnRequest cheap = Request({Method::kFinetune, Method::kRetrain});
  cheap.policy.max_cost_fraction = 0.5;
  cheap.policy.params.finetune.epochs = 1;
  OpenGate(cheap.policy);
  Result<UnlearnOutcome> r = engine_.Unlearn(cheap);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->report.attempts[0].outcome, "accepted");
  EXPECT_EQ(r->report.method, "finetune");
  // No exact method after it: a costly method still runs (skipping it would
  // leave the chain without a result).
  UnlearnRequest alone = Request({Method::kFinetune});
  alone.policy.max_cost_fraction = 0.5;
  OpenGate(alone.policy);
  r = engine_.Unlearn(alone);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->report.attempts[0].outcome, "accepted");
}

TEST_F(EngineTest, CostRuleEstimates) {
  MethodParams p;
  p.finetune.epochs = 2;
  p.neggrad_plus.epochs = 1;
  p.scrub.epochs = 4;
  p.scrub.max_epochs = 2;
  p.random_label.epochs = 1;
  p.salun.epochs = 2;
  Recipe recipe;
  recipe.epochs = 8;
  EXPECT_DOUBLE_EQ(
      EstimatedCostFraction(Method::kFinetune, p, recipe, 900, 100), 0.25);
  EXPECT_DOUBLE_EQ(
      EstimatedCostFraction(Method::kNegGradPlus, p, recipe, 900, 100), 0.25);
  EXPECT_DOUBLE_EQ(EstimatedCostFraction(Method::kScrub, p, recipe, 900, 100),
                   (4 * 900.0 + 2 * 100.0) / (8 * 900.0));
  EXPECT_DOUBLE_EQ(
      EstimatedCostFraction(Method::kRandomLabel, p, recipe, 900, 100),
      1000.0 / 7200.0);
  EXPECT_DOUBLE_EQ(EstimatedCostFraction(Method::kSalun, p, recipe, 900, 100),
                   2000.0 / 7200.0);
  EXPECT_EQ(EstimatedCostFraction(Method::kRetrain, p, recipe, 900, 100), 0);
  EXPECT_EQ(EstimatedCostFraction(Method::kFinetune, p, recipe, 0, 100), 0);
  p.head_refit.epochs = 4;  // a head epoch counted as a full one
  EXPECT_DOUBLE_EQ(
      EstimatedCostFraction(Method::kFinetune, p, recipe, 900, 100), 0.75);
  EXPECT_EQ(EstimatedCostFraction(Method::kRetrain, p, recipe, 900, 100), 0);
  UnlearnRequest bad = Request({Method::kFinetune, Method::kRetrain});
  bad.policy.max_cost_fraction = 0;
  Result<UnlearnOutcome> r = engine_.Unlearn(bad);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
}

TEST_F(EngineTest, ExhaustedChainReportsWithoutModel) {
  UnlearnRequest req = Request({Method::kFinetune, Method::kSisa});
  OpenGate(req.policy);
  req.policy.max_mia_auc = 0.0;
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->report.ok);
  EXPECT_TRUE(r->model_bytes.empty());
  EXPECT_EQ(r->report.attempts[1].outcome, "error");
  EXPECT_NE(r->report.attempts[1].reason.find("FAILED_PRECONDITION"),
            std::string::npos);
  EXPECT_NE(ReportToJson(r->report).find("\"ok\":false"), std::string::npos);
}

TEST_F(EngineTest, SpentTimeBudgetSkipsToExactMethod) {
  UnlearnRequest req = Request({Method::kScrub, Method::kRetrain});
  req.policy.time_budget_s = 1e-9;
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->report.attempts[0].outcome, "skipped");
  EXPECT_EQ(r->report.attempts[0].failure, AttemptFailure::kTimeBudget);
  EXPECT_EQ(r->report.method, "retrain");
}

TEST_F(EngineTest, AcceptedApproximateResultReportsGapToReference) {
  UnlearnRequest req = Request({Method::kFinetune, Method::kRetrain});
  OpenGate(req.policy);
  req.policy.reference_retrain = true;
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok());
  const Report& rep = r->report;
  EXPECT_EQ(rep.method, "finetune");
  ASSERT_TRUE(rep.has_reference);
  EXPECT_NEAR(rep.gap_points, GapPoints(rep.after, rep.reference), 1e-12);
  EXPECT_EQ(rep.forget_records, 60);
  EXPECT_EQ(rep.retain_records, 740);
  // The test split's two sides, divided by subject.
  EXPECT_EQ(rep.test_records + rep.validation_records, 300);
  EXPECT_GT(rep.validation_records, 0);
  EXPECT_EQ(rep.validation_records % 20, 0);  // whole subjects of 20
  std::string json = ReportToJson(rep);
  for (const char* field :
       {"\"gap_points\"", "\"timings\"", "\"before\"", "\"model_sha256\":\""}) {
    EXPECT_NE(json.find(field), std::string::npos) << field << json;
  }
}

TEST_F(EngineTest, RetrainEqualsTrainingWithoutTheSubjects) {
  Result<UnlearnOutcome> r = engine_.Unlearn(Request({Method::kRetrain}));
  ASSERT_TRUE(r.ok());
  testing::SubsetOptions o;
  o.train = 800;
  o.test = 300;
  for (const std::string& k : testing::TrainSubjects(2, 3))
    o.excluded.insert(k);
  Result<TrainedModel> t = engine_.Train(
      testing::SmallMlp(), testing::QuickRecipe(3), testing::FashionSubset(o));
  ASSERT_TRUE(t.ok());
  torch::jit::Module a = *LoadModel(r->model_bytes);
  torch::jit::Module b = *LoadModel(t->model_bytes);
  std::vector<at::Tensor> pa, pb;
  for (const at::Tensor& p : a.parameters()) pa.push_back(p);
  for (const at::Tensor& p : b.parameters()) pb.push_back(p);
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(at::equal(pa[i], pb[i]));
}

TEST_F(EngineTest, BadRequestsAreClearErrors) {
  UnlearnRequest req = Request({Method::kRetrain});
  req.forget_subjects = {"nobody"};
  EXPECT_EQ(engine_.Unlearn(req).status().code(), Code::kNotFound);
  req = Request({Method::kRetrain});
  req.model_bytes = "garbage";
  EXPECT_EQ(engine_.Unlearn(req).status().code(), Code::kInvalidArgument);
  req = Request({Method::kRetrain});
  std::string logreg5;
  {
    Architecture a = testing::SmallMlp();
    a.num_classes = 5;
    logreg5 = *SaveModel(*BuildModel(a, 0));
  }
  req.model_bytes = logreg5;
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("10 classes"), std::string::npos)
      << r.status().message();
  req = Request({});
  EXPECT_EQ(engine_.Unlearn(req).status().code(), Code::kInvalidArgument);
  req = Request({Method::kNewton, Method::kRetrain});  // no newton state
  r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->report.attempts[0].reason.find("certified"), std::string::npos);
}

// A retrain's class says what holds of the model it retrained: lethe's own
// training re-run (exact), or weights trained elsewhere retrained with
// lethe's recipe (retrained), or that with buffers nobody declared free of
// training data kept (parameters_retrained, naming them).
TEST_F(EngineTest, RetrainGuaranteeClassDependsOnProvenanceAndBuffers) {
  auto run = [&](const std::string& bytes, bool by_lethe) {
    UnlearnRequest req = Request({Method::kRetrain});
    req.model_bytes = bytes;
    req.trained_by_lethe = by_lethe;
    Result<UnlearnOutcome> r = engine_.Unlearn(req);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->report : Report{};
  };
  EXPECT_EQ(run(*model_, true).guarantee, "exact");
  Report plain = run(*model_, false);  // the same weights, registered
  EXPECT_EQ(plain.guarantee, "retrained");
  EXPECT_TRUE(plain.undeclared_buffers.empty());

  // A per-feature mean computed from the training data, kept by a retrain.
  torch::jit::Module m = *LoadModel(*model_);
  m.register_buffer("feature_mean", at::full({784}, 0.3));
  Report kept = run(*SaveModel(m), false);
  EXPECT_EQ(kept.guarantee, "parameters_retrained");
  EXPECT_EQ(kept.undeclared_buffers, std::vector<std::string>{"feature_mean"});
  EXPECT_NE(ReportToJson(kept).find(R"("undeclared_buffers":["feature_mean"])"),
            std::string::npos);
  // The model declaring the buffer data-free (its owner's statement, e.g. a
  // constant mask) makes it `retrained` again.
  m.register_attribute(kDataFreeBuffersAttr, c10::ListType::ofStrings(),
                       c10::List<std::string>({"feature_mean"}));
  Report declared = run(*SaveModel(m), false);
  EXPECT_EQ(declared.guarantee, "retrained");
  EXPECT_TRUE(declared.undeclared_buffers.empty());
}

TEST_F(EngineTest, ReportRecordsWhatBitExactnessDependsOn) {
  Result<UnlearnOutcome> r = engine_.Unlearn(Request({Method::kRetrain}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Reproducibility& x = r->report.reproducibility;
  EXPECT_EQ(x.libtorch, TORCH_VERSION);
  EXPECT_EQ(x.intra_op_threads, at::get_num_threads());
  EXPECT_EQ(x.device, "cpu");
  EXPECT_TRUE(x.bit_exact);
  EXPECT_NE(ReportToJson(r->report).find(R"("reproducibility":{"libtorch":")"),
            std::string::npos);
}

}  // namespace
}  // namespace lethe::core

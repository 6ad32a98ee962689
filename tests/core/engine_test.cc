// The policy chain: escalation on errors, divergence and failed gates, time
// budget, reference retraining, request errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "lethe/core/engine.h"
#include "lethe/core/model.h"
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
    Result<TrainedModel> m = Engine(EngineOptions{}).Train(
        testing::SmallMlp(), testing::QuickRecipe(3), *data_);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = new std::string(m->model_bytes);
  }

  UnlearnRequest Request(std::vector<Method> chain) const {
    UnlearnRequest r;
    r.model_bytes = *model_;
    r.dataset = data_;
    r.forget_subjects = testing::TrainSubjects(2, 3);
    r.recipe = testing::QuickRecipe(3);
    r.policy.chain = std::move(chain);
    return r;
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
  req.policy.max_mia_auc = 0.0;  // no approximate result can pass
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->report.attempts[0].outcome, "failed_gate");
  EXPECT_NE(r->report.attempts[0].reason.find("MIA AUC"), std::string::npos);
  EXPECT_TRUE(r->report.attempts[0].has_metrics);
  EXPECT_EQ(r->report.method, "retrain");
}

TEST_F(EngineTest, ForgetSetStillAboveTestAccuracyFailsTheGate) {
  UnlearnRequest req = Request({Method::kFinetune, Method::kRetrain});
  req.policy.max_mia_auc = 1.0;
  req.policy.max_test_acc_drop = 100;
  // Forget accuracy can never be 100 points below test accuracy.
  req.policy.max_forget_acc_excess = -100;
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->report.attempts.size(), 2u);
  EXPECT_EQ(r->report.attempts[0].outcome, "failed_gate");
  EXPECT_NE(r->report.attempts[0].reason.find("forget accuracy exceeds test accuracy"),
            std::string::npos)
      << r->report.attempts[0].reason;
  EXPECT_EQ(r->report.method, "retrain");
}

TEST_F(EngineTest, ExhaustedChainReportsWithoutModel) {
  UnlearnRequest req = Request({Method::kFinetune, Method::kSisa});
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
  EXPECT_EQ(r->report.method, "retrain");
}

TEST_F(EngineTest, AcceptedApproximateResultReportsGapToReference) {
  UnlearnRequest req = Request({Method::kFinetune, Method::kRetrain});
  req.policy.max_mia_auc = 1.0;
  req.policy.max_test_acc_drop = 100;
  req.policy.max_forget_acc_excess = 100;
  req.policy.reference_retrain = true;
  Result<UnlearnOutcome> r = engine_.Unlearn(req);
  ASSERT_TRUE(r.ok());
  const Report& rep = r->report;
  EXPECT_EQ(rep.method, "finetune");
  ASSERT_TRUE(rep.has_reference);
  EXPECT_NEAR(rep.gap_points, GapPoints(rep.after, rep.reference), 1e-12);
  EXPECT_EQ(rep.forget_records, 60);
  EXPECT_EQ(rep.retain_records, 740);
  EXPECT_EQ(rep.test_records, 300);
  std::string json = ReportToJson(rep);
  for (const char* field : {"\"gap_points\"", "\"timings\"", "\"before\"",
                            "\"model_sha256\":\"" }) {
    EXPECT_NE(json.find(field), std::string::npos) << field << json;
  }
}

TEST_F(EngineTest, RetrainEqualsTrainingWithoutTheSubjects) {
  Result<UnlearnOutcome> r = engine_.Unlearn(Request({Method::kRetrain}));
  ASSERT_TRUE(r.ok());
  testing::SubsetOptions o;
  o.train = 800;
  o.test = 300;
  for (const std::string& k : testing::TrainSubjects(2, 3)) o.excluded.insert(k);
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

}  // namespace
}  // namespace lethe::core

// ParseModelSpec: the stored model JSON (as the server writes it) becomes the
// engine's recipe and policy; 0 means the engine's default for a field.
#include "worker/engine/model_spec.h"

#include <gtest/gtest.h>

namespace lethe::worker {
namespace {

storage::DatasetRow Images() {
  storage::DatasetRow d;
  d.feature_shape = {1, 28, 28};
  d.feature_type = "uint8";
  d.num_classes = 10;
  return d;
}

storage::ModelRow Mlp(const std::string& policy_json) {
  storage::ModelRow m;
  m.architecture_json = R"({"kind": "KIND_MLP", "hiddenUnits": [256, 128]})";
  m.recipe_json = R"({"learningRate": 0.05, "epochs": 80, "batchSize": 128})";
  m.policy_json = policy_json;
  return m;
}

TEST(ModelSpecTest, FinetuneAndHeadRefitSettingsReachTheEngine) {
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(
      Mlp(R"({"finetune": {"epochs": 5, "learningRate": 0.4, "maxGradNorm": 1},
              "headRefit": {"epochs": 10, "learningRate": 0.8, "batchSize": 256}})"),
      Images());
  ASSERT_TRUE(spec.ok()) << spec.status();
  const core::MethodParams& p = spec->policy.params;
  EXPECT_EQ(p.finetune.epochs, 5);
  EXPECT_DOUBLE_EQ(p.finetune.lr, 0.4);
  EXPECT_DOUBLE_EQ(p.finetune.warmup, 0);
  EXPECT_DOUBLE_EQ(p.finetune.max_grad_norm, 1);
  EXPECT_EQ(p.head_refit.epochs, 10);
  EXPECT_DOUBLE_EQ(p.head_refit.lr, 0.8);
  EXPECT_EQ(p.head_refit.batch, 256);
}

TEST(ModelSpecTest, UnsetSettingsKeepTheEngineDefaults) {
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(Mlp("{}"), Images());
  ASSERT_TRUE(spec.ok()) << spec.status();
  const core::MethodParams defaults;
  const core::MethodParams& p = spec->policy.params;
  EXPECT_EQ(p.finetune.epochs, defaults.finetune.epochs);
  EXPECT_DOUBLE_EQ(p.finetune.lr, defaults.finetune.lr);
  EXPECT_DOUBLE_EQ(p.finetune.max_grad_norm, 0);
  EXPECT_EQ(p.head_refit.epochs, 0);
  EXPECT_DOUBLE_EQ(p.head_refit.lr, defaults.head_refit.lr);
  EXPECT_EQ(spec->policy.chain,
            (std::vector<core::Method>{core::Method::kFinetune,
                                       core::Method::kRetrain}));
}

TEST(ModelSpecTest, GateAndEveryApproximateMethodsSettingsReachTheEngine) {
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(
      Mlp(R"({"gateSignificance": 0.05, "adaptiveBudgetFraction": 0.5,
              "gateNeighbours": 10,
              "neggradPlus": {"epochs": 2, "learningRate": 0.03, "beta": 0.8},
              "scrub": {"epochs": 4, "maxEpochs": 2, "learningRate": 0.01,
                        "alpha": 0.5, "gamma": 2, "temperature": 3},
              "randomLabel": {"epochs": 3, "learningRate": 0.04},
              "salun": {"epochs": 2, "learningRate": 0.05,
                        "salientFraction": 0.3}})"),
      Images());
  ASSERT_TRUE(spec.ok()) << spec.status();
  const core::Policy& policy = spec->policy;
  EXPECT_DOUBLE_EQ(policy.gate_alpha, 0.05);
  EXPECT_DOUBLE_EQ(policy.adaptive_budget, 0.5);
  EXPECT_EQ(policy.gate_neighbours, 10);
  const core::MethodParams& p = policy.params;
  EXPECT_EQ(p.neggrad_plus.epochs, 2);
  EXPECT_DOUBLE_EQ(p.neggrad_plus.lr, 0.03);
  EXPECT_DOUBLE_EQ(p.neggrad_plus.beta, 0.8);
  EXPECT_EQ(p.scrub.epochs, 4);
  EXPECT_EQ(p.scrub.max_epochs, 2);
  EXPECT_DOUBLE_EQ(p.scrub.lr, 0.01);
  EXPECT_DOUBLE_EQ(p.scrub.alpha, 0.5);
  EXPECT_DOUBLE_EQ(p.scrub.gamma, 2);
  EXPECT_DOUBLE_EQ(p.scrub.temperature, 3);
  EXPECT_EQ(p.random_label.epochs, 3);
  EXPECT_DOUBLE_EQ(p.random_label.lr, 0.04);
  EXPECT_EQ(p.salun.epochs, 2);
  EXPECT_DOUBLE_EQ(p.salun.lr, 0.05);
  EXPECT_DOUBLE_EQ(p.salun.salient, 0.3);
}

TEST(ModelSpecTest, GateDefaultsAndAdaptiveOff) {
  absl::StatusOr<ModelSpec> defaults = ParseModelSpec(Mlp("{}"), Images());
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  const core::Policy core_defaults;
  EXPECT_DOUBLE_EQ(defaults->policy.gate_alpha, core_defaults.gate_alpha);
  EXPECT_DOUBLE_EQ(defaults->policy.adaptive_budget,
                   core_defaults.adaptive_budget);
  EXPECT_EQ(defaults->policy.gate_neighbours, core_defaults.gate_neighbours);
  // The fixed thresholds are off unless set (API: 0 = off).
  EXPECT_DOUBLE_EQ(defaults->policy.max_mia_auc, 1.0);
  EXPECT_DOUBLE_EQ(defaults->policy.max_forget_acc_excess, 100.0);
  absl::StatusOr<ModelSpec> off =
      ParseModelSpec(Mlp(R"({"adaptiveBudgetFraction": -1})"), Images());
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->policy.adaptive_budget, 0);
  absl::StatusOr<ModelSpec> subjects =
      ParseModelSpec(Mlp(R"({"gateNeighbours": -1})"), Images());
  ASSERT_TRUE(subjects.ok()) << subjects.status();
  EXPECT_EQ(subjects->policy.gate_neighbours, 0);
}

// proto3 enums are open: a method number this build has no name for is
// INVALID_ARGUMENT, not a crash (found by fuzz_model_spec).
TEST(ModelSpecTest, UnknownMethodNumbersAreInvalidArgument) {
  for (const char* policy :
       {R"({"methods": 22})", R"({"methods": [1, 99]})", R"({"methods": [-5]})",
        R"({"methods": ["UNLEARNING_METHOD_UNSPECIFIED"]})"}) {
    absl::StatusOr<ModelSpec> spec = ParseModelSpec(Mlp(policy), Images());
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument)
        << policy << ": " << spec.status();
  }
}

}  // namespace
}  // namespace lethe::worker

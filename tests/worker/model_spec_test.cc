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

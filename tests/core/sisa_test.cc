#include "lethe/core/sisa.h"

#include <ATen/ATen.h>

#include <set>

#include <gtest/gtest.h>

#include "lethe/core/engine.h"
#include "lethe/core/model.h"
#include "test_util.h"

namespace lethe::core {
namespace {

testing::SubsetOptions Options() {
  testing::SubsetOptions o;
  o.train = 1000;
  o.test = 200;
  return o;
}

SisaParams Params() {
  SisaParams p;
  p.shards = 4;
  p.slices = 3;
  return p;
}

Result<SisaState> Train(const Dataset& d) {
  torch::jit::Module t = *BuildModel(testing::SmallMlp({1, 28, 28}, {32}), 0);
  DeviceData dev = *ToDevice(d, Device{});
  return TrainSisa(t, d, dev, Params(), testing::QuickRecipe(3, 11));
}

bool SameWeights(const std::string& a, const std::string& b) {
  torch::jit::Module ma = *LoadModel(a), mb = *LoadModel(b);
  std::vector<at::Tensor> pa, pb;
  for (const at::Tensor& p : ma.parameters()) pa.push_back(p);
  for (const at::Tensor& p : mb.parameters()) pb.push_back(p);
  if (pa.size() != pb.size()) return false;
  for (size_t i = 0; i < pa.size(); ++i) {
    if (!at::equal(pa[i], pb[i])) return false;
  }
  return true;
}

TEST(SisaTest, ForgettingEqualsShardRetrainingBitForBit) {
  Dataset d = testing::FashionSubset(Options());
  Result<SisaState> s = Train(d);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<std::string> forget = {"train-3", "train-17"};
  Partition p = *PartitionBySubjects(d, forget);
  Result<SisaForgetResult> f = SisaForget(*s, d, *ToDevice(d, Device{}), p);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::set<int> expected = {ShardOfSubject("train-3", 4),
                            ShardOfSubject("train-17", 4)};
  EXPECT_EQ(
      std::set<int>(f->retrained_shards.begin(), f->retrained_shards.end()),
      expected);
  EXPECT_EQ(f->state.record_ids.size(), s->record_ids.size() - 40);

  testing::SubsetOptions o = Options();
  o.excluded = {forget.begin(), forget.end()};
  Dataset without = testing::FashionSubset(o);
  Result<SisaState> fresh = Train(without);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->record_ids, f->state.record_ids);
  for (int k = 0; k < 4; ++k) {
    for (int j = 0; j < 3; ++j) {
      EXPECT_TRUE(
          SameWeights(f->state.checkpoints[k][j], fresh->checkpoints[k][j]))
          << "shard " << k << " slice " << j;
    }
    // Untouched shards were not retrained at all.
    if (!expected.count(k)) {
      EXPECT_EQ(f->state.checkpoints[k], s->checkpoints[k]);
    } else {
      EXPECT_FALSE(
          SameWeights(f->state.checkpoints[k][2], s->checkpoints[k][2]));
    }
  }
}

TEST(SisaTest, StateSerialisesAndDetectsCorruption) {
  testing::SubsetOptions o = Options();
  o.train = 200;
  o.test = 10;
  Dataset d = testing::FashionSubset(o);
  Result<SisaState> s = Train(d);
  ASSERT_TRUE(s.ok());
  std::string bytes = SerializeSisaState(*s);
  Result<SisaState> back = ParseSisaState(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->record_ids, s->record_ids);
  EXPECT_EQ(back->slice, s->slice);
  EXPECT_EQ(back->checkpoints, s->checkpoints);
  EXPECT_EQ(back->recipe.seed, 11u);
  EXPECT_EQ(SerializeSisaState(*back), bytes);
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 1;
  EXPECT_NE(ParseSisaState(flipped).status().message().find("checksum"),
            std::string::npos);
  EXPECT_FALSE(ParseSisaState(bytes.substr(0, 40)).ok());
  // A warm-up is not in the state's format: refused rather than lost.
  Recipe warm = testing::QuickRecipe(3, 11);
  warm.warmup_fraction = 0.1;
  torch::jit::Module t = *BuildModel(testing::SmallMlp({1, 28, 28}, {32}), 0);
  Result<SisaState> refused =
      TrainSisa(t, d, *ToDevice(d, Device{}), Params(), warm);
  EXPECT_EQ(refused.status().code(), Code::kInvalidArgument);
}

TEST(SisaTest, EngineUnlearnsSisaModelExactly) {
  Dataset d = testing::FashionSubset(Options());
  Engine engine(EngineOptions{});
  Result<TrainedModel> t =
      engine.TrainSisa(testing::SmallMlp({1, 28, 28}, {32}),
                       testing::QuickRecipe(6, 11), Params(), d);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_GT(t->test_accuracy, 0.6);
  UnlearnRequest req;
  req.model_bytes = t->model_bytes;
  req.dataset = &d;
  req.forget_subjects = {"train-5"};
  req.recipe = testing::QuickRecipe(6, 11);
  req.sisa_state = t->sisa_state;
  req.policy.chain = {Method::kFinetune, Method::kSisa};
  Result<UnlearnOutcome> r = engine.Unlearn(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->report.attempts[0].outcome, "error");  // not for SISA models
  EXPECT_EQ(r->report.method, "sisa");
  EXPECT_EQ(r->report.guarantee, "exact");
  ASSERT_EQ(r->report.sisa_retrained_shards.size(), 1u);
  EXPECT_EQ(r->report.sisa_retrained_shards[0], ShardOfSubject("train-5", 4));
  EXPECT_TRUE(ParseSisaState(r->sisa_state).ok());
  EXPECT_TRUE(engine.Validate(r->model_bytes, d.spec()).ok());
  EXPECT_GT(r->report.after.ta, 0.6);
}

}  // namespace
}  // namespace lethe::core

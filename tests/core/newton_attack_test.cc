// The attack of issue 15 on certified removal. An observer knows every public
// field of a certified model (architecture, recipe with its seed, policy),
// the data, and the weights published after a subject's removal. They re-run
// certified training with what they know, simulate the removal of each
// candidate subject, and name the candidate whose simulation lands nearest
// the published weights. When b came from the recipe seed (lethe before
// lethe-newton-v3) that names the removed subject exactly; with a secret b
// the true subject's simulation is no nearer than the decoys'.
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lethe/core/engine.h"
#include "lethe/core/model.h"
#include "lethe/core/newton.h"
#include "test_util.h"

namespace lethe::core {
namespace {

constexpr uint64_t kSeed = 7;  // the recipe seed: public
constexpr int kDecoys = 20;

Architecture RfLogReg() {
  Architecture a;
  a.kind = ArchKind::kRfLogReg;
  a.input_shape = {1, 28, 28};
  a.hidden = {128};
  return a;
}

NewtonParams Params() {
  NewtonParams p;  // budget 2.28 at epsilon 1: one subject fits
  p.lambda = 1e-2;
  p.sigma = 10;
  p.epsilon = 1;
  p.delta = 1e-4;
  return p;
}

// b as lethe drew it before lethe-newton-v3: from the recipe seed.
at::Tensor SeedNoise(int64_t k, int64_t d, double sigma) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(kSeed);
  return at::randn({k, d}, g, at::TensorOptions(at::kDouble)) * sigma;
}

at::Tensor Weights(const torch::jit::Module& m) {
  std::vector<at::Tensor> p;
  for (const at::Tensor& t : m.parameters()) p.push_back(t.flatten());
  return at::cat(p).to(at::kDouble);
}

// A certified model and the removal of one subject, published as the
// service publishes them (Engine::TrainCertified, Engine::Unlearn).
struct Published {
  std::string trained_bytes, trained_state;
  at::Tensor after;  // the weights published after the removal
};

Published Remove(const Engine& engine, const Dataset& data,
                 const std::string& subject, std::string model_bytes,
                 std::string state) {
  UnlearnRequest req;
  req.model_bytes = model_bytes;
  req.dataset = &data;
  req.forget_subjects = {subject};
  req.newton_state = state;
  req.policy.chain = {Method::kNewton};
  req.policy.gate_alpha = 0;  // the gate is not what this test checks
  req.policy.max_test_acc_drop = 100;
  Result<UnlearnOutcome> r = engine.Unlearn(req);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {};
  const std::string json = ReportToJson(r->report);
  EXPECT_EQ(r->report.method, "newton") << json;
  EXPECT_EQ(r->report.guarantee, "certified") << json;
  // Nothing published says what b was or where it came from.
  EXPECT_EQ(json.find("seed"), std::string::npos) << json;
  EXPECT_EQ(json.find("noise"), std::string::npos) << json;
  return {std::move(model_bytes), std::move(state),
          Weights(*LoadModel(r->model_bytes))};
}

struct Attack {
  double truth = 0;            // distance of the true subject's simulation
  std::vector<double> decoys;  // the decoys', ascending
  double ratio() const { return truth / decoys.front(); }
  int rank() const {  // 1: nearest of all candidates
    return 1 +
           static_cast<int>(std::count_if(decoys.begin(), decoys.end(),
                                          [&](double d) { return d < truth; }));
  }
};

// The observer's simulation: certified training with the seed's b, then the
// removal of each candidate; distances to the published weights.
Attack Simulate(const Dataset& data, const DeviceData& dev,
                const std::string& truth,
                const std::vector<std::string>& decoys,
                const at::Tensor& published) {
  torch::jit::Module model = *BuildModel(RfLogReg(), kSeed);
  Result<NewtonState> state =
      TrainCertifiedWithNoise(model, dev, IndicesOfSplit(data, Split::kTrain),
                              Params(), SeedNoise(10, 129, Params().sigma));
  EXPECT_TRUE(state.ok()) << state.status().ToString();
  auto distance = [&](const std::string& subject) {
    Result<NewtonRemoval> r =
        NewtonRemove(model, dev, *PartitionBySubjects(data, {subject}), *state);
    EXPECT_TRUE(r.ok() && !r->retrain_needed) << subject;
    if (!r.ok() || r->retrain_needed) return 0.0;
    return (Weights(r->model) - published).norm().item<double>();
  };
  Attack a;
  a.truth = distance(truth);
  for (const std::string& d : decoys) a.decoys.push_back(distance(d));
  std::sort(a.decoys.begin(), a.decoys.end());
  return a;
}

void Print(const char* what, const Attack& a) {
  std::printf(
      "%s: true subject %.6g, decoys %.6g..%.6g (median %.6g); "
      "ratio to the nearest decoy %.6g, rank %d of %d\n",
      what, a.truth, a.decoys.front(), a.decoys.back(),
      a.decoys[a.decoys.size() / 2], a.ratio(), a.rank(),
      static_cast<int>(a.decoys.size()) + 1);
}

TEST(NewtonAttackTest, SeedKnowingObserverCannotTellTheRemovedSubject) {
  testing::SubsetOptions o;
  o.train = 3000;
  o.test = 500;
  Dataset data = testing::FashionSubset(o);
  DeviceData dev = *ToDevice(data, Device{});
  const std::string truth = "train-17";
  std::vector<std::string> decoys;
  for (int s = 100; s < 100 + kDecoys; ++s) {
    decoys.push_back("train-" + std::to_string(s));
  }
  Engine engine(EngineOptions{});

  // Before the fix: b from the seed, removal as the engine does it. The
  // observer's simulation of the true subject reproduces the published
  // weights.
  torch::jit::Module seeded = *BuildModel(RfLogReg(), kSeed);
  Result<NewtonState> seeded_state =
      TrainCertifiedWithNoise(seeded, dev, IndicesOfSplit(data, Split::kTrain),
                              Params(), SeedNoise(10, 129, Params().sigma));
  ASSERT_TRUE(seeded_state.ok()) << seeded_state.status().ToString();
  Published before = Remove(engine, data, truth, *SaveModel(seeded),
                            SerializeNewtonState(*seeded_state));
  ASSERT_TRUE(before.after.defined());
  Attack old = Simulate(data, dev, truth, decoys, before.after);
  Print("seed-drawn b (before the fix)", old);
  EXPECT_EQ(old.rank(), 1);
  EXPECT_LT(old.ratio(), 0.01);

  // The service now: the same recipe, seed and data; b is secret.
  Result<TrainedModel> t =
      engine.TrainCertified(RfLogReg(), Params(), kSeed, data);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->newton_state.find("seed"), std::string::npos);
  Published now = Remove(engine, data, truth, t->model_bytes, t->newton_state);
  ASSERT_TRUE(now.after.defined());
  Attack fixed = Simulate(data, dev, truth, decoys, now.after);
  Print("secret b", fixed);
  // Not singled out by a margin: the true simulation is about as far as the
  // nearest decoy's (before the fix: 0). b is fresh on every run, so the
  // distances and the rank vary; the ratio stays within ~1e-3 of 1 (the
  // seed's b is as far from the secret one for every candidate).
  EXPECT_GT(fixed.ratio(), 0.5);

  // Outside the guarantee: an observer who kept the version before the
  // removal needs no b (the step is a function of those weights and the
  // data). Printed for docs/compliance.md, not asserted.
  torch::jit::Module v1 = *LoadModel(now.trained_bytes);
  NewtonState no_cache = *ParseNewtonState(now.trained_state);
  no_cache.hessians = no_cache.hessian_at = no_cache.gram = at::Tensor();
  Attack kept;
  auto step = [&](const std::string& subject) {
    Result<NewtonRemoval> r =
        NewtonRemove(v1, dev, *PartitionBySubjects(data, {subject}), no_cache);
    return r.ok() && !r->retrain_needed
               ? (Weights(r->model) - now.after).norm().item<double>()
               : -1.0;
  };
  kept.truth = step(truth);
  for (const std::string& d : decoys) kept.decoys.push_back(step(d));
  std::sort(kept.decoys.begin(), kept.decoys.end());
  Print("observer holding the version before (not covered)", kept);
}

}  // namespace
}  // namespace lethe::core

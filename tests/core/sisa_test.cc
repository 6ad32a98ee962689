#include "lethe/core/sisa.h"

#include <ATen/ATen.h>

#include <map>
#include <set>

#include <gtest/gtest.h>

#include "lethe/core/engine.h"
#include "lethe/core/model.h"
#include "lethe/core/sha256.h"
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

SisaAssignment Of(const std::string& subject) {
  return AssignSubject(subject, 11, Params().shards, Params().slices);
}

// Every checkpoint of `a` has the weights of the same checkpoint of `b`.
void ExpectSameCheckpoints(const SisaState& a, const SisaState& b);

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
  std::set<int> expected = {Of("train-3").shard, Of("train-17").shard};
  EXPECT_EQ(
      std::set<int>(f->retrained_shards.begin(), f->retrained_shards.end()),
      expected);
  // Each shard retrains from the forgotten subjects' first slice on.
  std::map<int, int> from;
  for (const std::string& subject : forget) {
    auto [it, fresh] = from.emplace(Of(subject).shard, Of(subject).slice);
    if (!fresh) it->second = std::min(it->second, Of(subject).slice);
  }
  int stages = 0;
  for (auto [shard, slice] : from) stages += Params().slices - slice;
  EXPECT_EQ(f->retrained_stages, stages);
  EXPECT_EQ(f->added_records, 0);
  EXPECT_FALSE(f->rebuilt);
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
  EXPECT_EQ(r->report.sisa_retrained_shards[0], Of("train-5").shard);
  EXPECT_TRUE(ParseSisaState(r->sisa_state).ok());
  EXPECT_TRUE(engine.Validate(r->model_bytes, d.spec()).ok());
  EXPECT_GT(r->report.after.ta, 0.6);
}

void ExpectSameCheckpoints(const SisaState& a, const SisaState& b) {
  ASSERT_EQ(a.checkpoints.size(), b.checkpoints.size());
  for (size_t k = 0; k < a.checkpoints.size(); ++k) {
    ASSERT_EQ(a.checkpoints[k].size(), b.checkpoints[k].size());
    for (size_t j = 0; j < a.checkpoints[k].size(); ++j) {
      EXPECT_TRUE(SameWeights(a.checkpoints[k][j], b.checkpoints[k][j]))
          << "shard " << k << " stage " << j;
    }
  }
}

TEST(SisaTest, SubjectLivesInOneShardAndOneSlice) {
  Dataset d = testing::FashionSubset(Options());
  Result<SisaState> s = Train(d);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::map<int64_t, int64_t> row_of;
  for (int64_t i = 0; i < d.size(); ++i) row_of[d.record_ids()[i]] = i;
  std::map<std::string, std::set<std::pair<int, int>>> places;
  std::set<int> slices;
  for (size_t i = 0; i < s->record_ids.size(); ++i) {
    const int64_t row = row_of.at(s->record_ids[i]);
    const std::string& subject = d.subjects()[d.subject_index()[row]];
    places[subject].insert({s->shard[i], s->slice[i]});
    slices.insert(s->slice[i]);
    EXPECT_EQ(s->shard[i], Of(subject).shard);
    EXPECT_EQ(s->slice[i], Of(subject).slice);
  }
  EXPECT_EQ(places.size(), 50u);  // 1,000 records, 20 a subject
  for (const auto& [subject, where] : places) {
    EXPECT_EQ(where.size(), 1u) << subject;
  }
  EXPECT_EQ(slices.size(), 3u);  // subjects spread over every slice
  // The salt is the recipe seed: another seed places subjects elsewhere.
  int moved = 0;
  for (const auto& [subject, where] : places) {
    SisaAssignment a = AssignSubject(subject, 12, 4, 3);
    moved += (std::pair<int, int>{a.shard, a.slice} != *where.begin());
  }
  EXPECT_GT(moved, 25);
}

TEST(SisaTest, StageStepsFollowThePaper) {
  Recipe r;
  r.epochs = 8;
  r.batch_size = 100;
  SisaParams p;
  p.slices = 8;
  // 2 * 8 / 9 epochs of 10 batches: 17.8 -> 18.
  EXPECT_EQ(SisaStageSteps(p, r, 1000), 18);
  p.slices = 1;  // one slice: the recipe's epochs
  EXPECT_EQ(SisaStageSteps(p, r, 1000), 80);
  p.slices = 8;
  EXPECT_EQ(SisaStageSteps(p, r, 1), 2);
  r.epochs = 1;
  p.slices = 65535;
  EXPECT_EQ(SisaStageSteps(p, r, 1), 1);  // never zero
}

// Every recipe field survives the state's round trip: a shard retrained from
// the parsed state with clipping and a warm-up equals fresh training.
TEST(SisaTest, RecipeRoundTripsAndRetrainingStaysExact) {
  testing::SubsetOptions o = Options();
  o.train = 400;
  o.test = 10;
  Dataset d = testing::FashionSubset(o);
  Recipe r = testing::QuickRecipe(3, 11);
  r.max_grad_norm = 0.5;
  r.warmup_fraction = 0.2;
  r.weight_decay = 1e-4;
  r.optimizer = Optimizer::kAdam;
  r.lr = 0.003;
  torch::jit::Module t = *BuildModel(testing::SmallMlp({1, 28, 28}, {32}), 0);
  DeviceData dev = *ToDevice(d, Device{});
  Result<SisaState> s = TrainSisa(t, d, dev, Params(), r);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Result<SisaState> back = ParseSisaState(SerializeSisaState(*s));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->recipe.max_grad_norm, 0.5);
  EXPECT_EQ(back->recipe.warmup_fraction, 0.2);
  EXPECT_EQ(back->recipe.weight_decay, 1e-4);
  EXPECT_EQ(back->recipe.optimizer, Optimizer::kAdam);
  EXPECT_EQ(back->recipe.lr, 0.003);
  EXPECT_EQ(back->recipe.seed, 11u);
  std::vector<std::string> forget = {"train-2"};
  Result<SisaForgetResult> f =
      SisaForget(*back, d, dev, *PartitionBySubjects(d, forget));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  o.excluded = {forget.begin(), forget.end()};
  Dataset without = testing::FashionSubset(o);
  Result<SisaState> fresh =
      TrainSisa(t, without, *ToDevice(without, Device{}), Params(), r);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->record_ids, f->state.record_ids);
  ExpectSameCheckpoints(f->state, *fresh);
  // Clipping mattered: without it, the retrained shard would differ.
  Recipe unclipped = r;
  unclipped.max_grad_norm = 0;
  Result<SisaState> other =
      TrainSisa(t, without, *ToDevice(without, Device{}), Params(), unclipped);
  ASSERT_TRUE(other.ok());
  const int k = Of("train-2").shard;
  EXPECT_FALSE(SameWeights(other->checkpoints[k].back(),
                           f->state.checkpoints[k].back()));
}

// Records added to the dataset after training are trained at the next
// forget, into their subject's shard and slice: the state then equals fresh
// training on the current data.
TEST(SisaTest, RecordsAddedSinceTrainingAreTrained) {
  testing::SubsetOptions o = Options();
  o.train = 600;
  o.test = 10;
  o.excluded = {"train-7"};  // arrives later
  Dataset before = testing::FashionSubset(o);
  Result<SisaState> s = Train(before);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  o.excluded.clear();
  Dataset now = testing::FashionSubset(o);
  std::vector<std::string> forget = {"train-20"};
  Result<SisaForgetResult> f = SisaForget(*s, now, *ToDevice(now, Device{}),
                                          *PartitionBySubjects(now, forget));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->added_records, 20);
  std::set<int> touched = {Of("train-7").shard, Of("train-20").shard};
  EXPECT_EQ(
      std::set<int>(f->retrained_shards.begin(), f->retrained_shards.end()),
      touched);
  o.excluded = {forget.begin(), forget.end()};
  Dataset want = testing::FashionSubset(o);
  Result<SisaState> fresh = Train(want);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->record_ids, f->state.record_ids);
  ExpectSameCheckpoints(f->state, *fresh);
}

// A v1 state (slices by record id, no warm-up or clipping in its recipe):
// the v2 bytes with the scheme byte and the two new recipe fields cut out.
std::string AsV1(const std::string& v2) {
  const size_t magic = 13, header = 4 + 4,
               recipe = 1 + 8 + 8 + 8 + 4 + 4 + 8 + 1;
  std::string body = "LETHE-SISA-1\n";
  body += v2.substr(magic + 1, header + recipe);
  body += v2.substr(magic + 1 + header + recipe + 16,
                    v2.size() - 32 - (magic + 1 + header + recipe + 16));
  Sha256Digest h = Sha256(body);
  return body + std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

TEST(SisaTest, LegacyStateIsRebuiltExactlyOnItsNextForget) {
  testing::SubsetOptions o = Options();
  o.train = 400;
  o.test = 10;
  Dataset d = testing::FashionSubset(o);
  Result<SisaState> s = Train(d);
  ASSERT_TRUE(s.ok());
  Result<SisaState> legacy = ParseSisaState(AsV1(SerializeSisaState(*s)));
  ASSERT_TRUE(legacy.ok()) << legacy.status().ToString();
  EXPECT_TRUE(legacy->legacy);
  EXPECT_EQ(legacy->record_ids, s->record_ids);
  EXPECT_TRUE(SisaEnsemble(*legacy).ok());  // still serves
  // Its scheme survives a round trip until rebuilt.
  EXPECT_TRUE(ParseSisaState(SerializeSisaState(*legacy))->legacy);
  std::vector<std::string> forget = {"train-4"};
  Result<SisaForgetResult> f = SisaForget(*legacy, d, *ToDevice(d, Device{}),
                                          *PartitionBySubjects(d, forget));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_TRUE(f->rebuilt);
  EXPECT_FALSE(f->state.legacy);
  EXPECT_EQ(f->retrained_shards.size(), 4u);
  o.excluded = {forget.begin(), forget.end()};
  Dataset without = testing::FashionSubset(o);
  Result<SisaState> fresh = Train(without);
  ASSERT_TRUE(fresh.ok());
  ExpectSameCheckpoints(f->state, *fresh);
}

}  // namespace
}  // namespace lethe::core

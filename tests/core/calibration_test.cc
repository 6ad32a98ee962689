// The calibrated forgetting check (core/calibration.h) on synthetic scores
// whose truth is known: forget sets drawn like the validation subjects pass
// at the promised rate, memorised and over-forgotten ones fail, and a
// person's correlated records widen the interval as they should.
#include "lethe/core/calibration.h"

#include <algorithm>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

namespace lethe::core {
namespace {

// Records of `subjects` people, `per` each. A person's losses share an
// offset (sd `person_sd`): records of one person are alike.
struct Population {
  RecordScores scores;
  std::vector<int64_t> subject;
};

float DrawLoss(std::mt19937_64& rng, double person_offset, double shift) {
  std::lognormal_distribution<double> base(-1.0 + person_offset + shift, 1.0);
  return static_cast<float>(base(rng));
}

Population Draw(std::mt19937_64& rng, int subjects, int per, double person_sd,
                double shift = 0) {
  Population p;
  std::normal_distribution<double> offset(0, person_sd);
  for (int s = 0; s < subjects; ++s) {
    const double o = person_sd > 0 ? offset(rng) : 0;
    for (int i = 0; i < per; ++i) {
      const float loss = DrawLoss(rng, o, shift);
      p.scores.losses.push_back(loss);
      // Correct when the true class is the most likely: here, p > 0.4.
      p.scores.correct.push_back(std::exp(-loss) > 0.4 ? 1 : 0);
      p.subject.push_back(s);
    }
  }
  return p;
}

// The share of `trials` forget sets (one person of `per` records each,
// drawn with `shift`) that pass against one validation population.
double PassRate(int trials, int per, double person_sd, double shift,
                double alpha) {
  std::mt19937_64 rng(42);
  Population validation = Draw(rng, 250, 20, person_sd);
  int passed = 0;
  for (int t = 0; t < trials; ++t) {
    Population forget = Draw(rng, 1, per, person_sd, shift);
    CalibrationOptions o;
    o.alpha = alpha;
    o.resamples = 2000;
    o.seed = static_cast<uint64_t>(t);
    Result<Calibration> c = CalibrateForgetSet(forget.scores, validation.scores,
                                               validation.subject, o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_TRUE(c->available);
    passed += c->passed() ? 1 : 0;
  }
  return static_cast<double>(passed) / trials;
}

TEST(CalibrationTest, NeverSeenPeoplePassAtTheStatedRate) {
  // alpha 0.05: at least ~95% of never-seen people pass (Bonferroni makes it
  // conservative); 300 trials give a standard error of ~1.3 points.
  const double rate = PassRate(300, 20, 0.5, 0, 0.05);
  EXPECT_GE(rate, 0.92) << rate;
  EXPECT_LT(rate, 1.0) << rate;  // the interval is not wider than it must be
}

TEST(CalibrationTest, MemorisedAndOverForgottenPeopleFail) {
  // Losses e^3 ~ 20x lower (memorised) or higher (pushed away): both fail.
  EXPECT_LE(PassRate(100, 20, 0.5, -3.0, 0.01), 0.05);
  EXPECT_LE(PassRate(100, 20, 0.5, +3.0, 0.01), 0.05);
}

TEST(CalibrationTest, MemorisedSetIsOutsideItsIntervalOnTheRightSide) {
  std::mt19937_64 rng(7);
  Population validation = Draw(rng, 100, 20, 0.3);
  Population forget = Draw(rng, 1, 40, 0.3, -3.0);
  Result<Calibration> c = CalibrateForgetSet(forget.scores, validation.scores,
                                             validation.subject, {});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->passed());
  EXPECT_GT(c->confidence.value, c->confidence.upper);
  EXPECT_LT(c->confidence.p_value, 0.01);
  EXPECT_EQ(c->forget_records, 40);
  EXPECT_EQ(c->validation_records, 2000);
  EXPECT_EQ(c->validation_subjects, 100);
  EXPECT_EQ(c->resamples, 4000);
  EXPECT_LE(c->accuracy.lower, c->accuracy.null_mean);
  EXPECT_GE(c->accuracy.upper, c->accuracy.null_mean);
}

TEST(CalibrationTest, WholePeopleAreResampledSoCorrelationWidensTheNull) {
  // The same records, grouped as 100 people of 20 or as 2,000 people of 1:
  // a 20-record group drawn from whole correlated people varies more.
  std::mt19937_64 rng(3);
  Population validation = Draw(rng, 100, 20, 1.0);
  Population forget = Draw(rng, 1, 20, 1.0);
  std::vector<int64_t> each_alone(validation.subject.size());
  for (size_t i = 0; i < each_alone.size(); ++i) {
    each_alone[i] = static_cast<int64_t>(i);
  }
  Result<Calibration> people = CalibrateForgetSet(
      forget.scores, validation.scores, validation.subject, {});
  Result<Calibration> records =
      CalibrateForgetSet(forget.scores, validation.scores, each_alone, {});
  ASSERT_TRUE(people.ok() && records.ok());
  EXPECT_GT(people->confidence.null_sd, 2 * records->confidence.null_sd);
  EXPECT_GT(people->confidence.upper - people->confidence.lower,
            2 * (records->confidence.upper - records->confidence.lower));
  // Calibrating against single records, correlated people fail far more
  // often than alpha: why the groups are whole people.
  EXPECT_GE(PassRate(200, 20, 1.0, 0, 0.05), 0.92);
}

TEST(CalibrationTest, MarginWidensBothIntervalsOnBothSides) {
  std::mt19937_64 rng(11);
  Population validation = Draw(rng, 100, 20, 0.3);
  Population forget = Draw(rng, 1, 20, 0.3);
  CalibrationOptions plain;
  CalibrationOptions wide;
  wide.margin = 0.05;
  Result<Calibration> a = CalibrateForgetSet(forget.scores, validation.scores,
                                             validation.subject, plain);
  Result<Calibration> b = CalibrateForgetSet(forget.scores, validation.scores,
                                             validation.subject, wide);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b->margin, 0.05);
  EXPECT_NEAR(b->accuracy.lower, a->accuracy.lower - 0.05, 1e-12);
  EXPECT_NEAR(b->accuracy.upper, a->accuracy.upper + 0.05, 1e-12);
  EXPECT_NEAR(b->confidence.lower, a->confidence.lower - 0.05, 1e-12);
  EXPECT_NEAR(b->confidence.upper, a->confidence.upper + 0.05, 1e-12);
  // The p-value is the null's, margin or not.
  EXPECT_EQ(b->confidence.p_value, a->confidence.p_value);
  wide.margin = 1;
  EXPECT_FALSE(CalibrateForgetSet(forget.scores, validation.scores,
                                  validation.subject, wide)
                   .ok());
}

TEST(CalibrationTest, TooLittleValidationDataIsNotAvailable) {
  std::mt19937_64 rng(1);
  Population few_records = Draw(rng, 10, 5, 0);  // 50 records
  Population few_people = Draw(rng, 4, 50, 0);   // 200 records, 4 people
  Population forget = Draw(rng, 1, 20, 0);
  for (const Population* v : {&few_records, &few_people}) {
    Result<Calibration> c =
        CalibrateForgetSet(forget.scores, v->scores, v->subject, {});
    ASSERT_TRUE(c.ok());
    EXPECT_FALSE(c->available);
    EXPECT_FALSE(c->passed());
  }
}

TEST(CalibrationTest, LargeForgetSetsAreDrawnWithReplacement) {
  // More forget records than validation records still get a null whose
  // spread is an independent group's, not zero.
  std::mt19937_64 rng(5);
  Population validation = Draw(rng, 20, 10, 0);
  Population forget = Draw(rng, 30, 10, 0);
  Result<Calibration> c = CalibrateForgetSet(forget.scores, validation.scores,
                                             validation.subject, {});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->available);
  EXPECT_GT(c->confidence.null_sd, 0.01);
}

TEST(CalibrationTest, LogitConfidencesSeeWhatSaturatedLossesHide) {
  // A confident model: every float32 loss is 0, so the loss-derived phi
  // ties at the clamp and ranks every record alike. The logits' phi still
  // orders them, and a forget set at the top of it is outside its range.
  RecordScores validation;
  std::vector<int64_t> subject;
  for (int i = 0; i < 400; ++i) {
    validation.losses.push_back(0);
    validation.correct.push_back(1);
    validation.confidence.push_back(static_cast<float>(20 + i % 40));
    subject.push_back(i / 4);
  }
  RecordScores forget{std::vector<float>(30, 0), std::vector<char>(30, 1),
                      std::vector<float>(30, 70)};
  Result<Calibration> c = CalibrateForgetSet(forget, validation, subject, {});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->confidence.within());
  EXPECT_DOUBLE_EQ(c->confidence.value, 1.0);
  forget.confidence.clear();  // from the losses: all tied
  c = CalibrateForgetSet(forget, validation, subject, {});
  ASSERT_TRUE(c.ok());
  validation.confidence.clear();
  c = CalibrateForgetSet(forget, validation, subject, {});
  ASSERT_TRUE(c.ok());
  EXPECT_DOUBLE_EQ(c->confidence.value, 0.5);
  EXPECT_TRUE(c->confidence.within());
  // Confidences must come one per record.
  forget.confidence = {1, 2};
  EXPECT_EQ(CalibrateForgetSet(forget, validation, subject, {}).status().code(),
            Code::kInvalidArgument);
}

TEST(CalibrationTest, ConfidenceIsLiRasLogit) {
  EXPECT_NEAR(ConfidenceOfLoss(static_cast<float>(std::log(2.0))), 0, 1e-6);
  // p = 0.9: log(9).
  EXPECT_NEAR(ConfidenceOfLoss(static_cast<float>(-std::log(0.9))),
              std::log(9.0), 1e-5);
  EXPECT_EQ(ConfidenceOfLoss(0), 20);
  EXPECT_EQ(ConfidenceOfLoss(NAN), -20);
  EXPECT_EQ(ConfidenceOfLoss(1e6F), -20);
}

TEST(CalibrationTest, UtilityDropGetsTheValidationRecordsChance) {
  // 1,000 records; the candidate loses 30 the model had right and gains 10:
  // a 2-point drop, with 40 discordant records (McNemar's standard error
  // sqrt(40) / 1000 = 0.63 points).
  std::vector<char> before(1000, 1);
  std::vector<char> after(1000, 1);
  for (int i = 0; i < 30; ++i) after[i] = 0;
  for (int i = 30; i < 40; ++i) before[i] = 0;
  UtilityCheck u = CheckUtility(before, after, 1.5, 0.01);
  EXPECT_NEAR(u.drop_points, 2.0, 1e-12);
  EXPECT_NEAR(u.allowed_points,
              1.5 + 2.3263478740 * 100 * std::sqrt(40.0) / 1000, 1e-6);
  EXPECT_TRUE(u.passed());
  // Without calibration the plain limit applies.
  EXPECT_FALSE(CheckUtility(before, after, 1.5, 0).passed());
  // A drop far beyond the chance fails.
  for (int i = 40; i < 100; ++i) after[i] = 0;
  EXPECT_FALSE(CheckUtility(before, after, 1.5, 0.01).passed());
  EXPECT_NEAR(NormalQuantile(0.975), 1.959963985, 1e-8);
  EXPECT_NEAR(NormalQuantile(0.01), -2.326347874, 1e-8);
  EXPECT_NEAR(NormalQuantile(0.5), 0, 1e-12);
}

// A validation population in two regions of the input space: easy records
// (losses ~e^-2) and hard ones (~e^0.5), the easy people of 20 records,
// two hard people of 100 (so rare among people that the subjects null's
// interval for one person does not reach them). For a forget set of hard
// records, `Matches` pairs each with k hard validation records. People here
// differ only by region: the matched null does not see a person's own effect
// beyond the look of their records (calibration.h).
struct Regions {
  Population validation;
  std::vector<int64_t> hard;  // validation positions in the hard region
};

Regions DrawRegions(std::mt19937_64& rng, double hard_shift = +1.5) {
  Regions r;
  Population easy = Draw(rng, 200, 20, 0, -1.0);
  Population hard = Draw(rng, 2, 100, 0, hard_shift);
  r.validation = easy;
  for (size_t i = 0; i < hard.scores.losses.size(); ++i) {
    r.hard.push_back(static_cast<int64_t>(r.validation.scores.losses.size()));
    r.validation.scores.losses.push_back(hard.scores.losses[i]);
    r.validation.scores.correct.push_back(hard.scores.correct[i]);
    r.validation.subject.push_back(1000 + hard.subject[i]);
  }
  return r;
}

// k distinct neighbours per forget record, drawn from `pool`.
NeighbourMatches Matches(std::mt19937_64& rng, size_t forget,
                         std::vector<int64_t> pool, int64_t k) {
  NeighbourMatches m;
  m.k = k;
  for (size_t i = 0; i < forget; ++i) {
    std::shuffle(pool.begin(), pool.end(), rng);
    m.index.insert(m.index.end(), pool.begin(), pool.begin() + k);
  }
  return m;
}

TEST(CalibrationTest, MatchedNullJudgesHardPeopleAgainstLookAlikes) {
  // One never-seen person from the hard region: against typical people the
  // check calls them over-forgotten; against their look-alikes it passes
  // at the promised rate. A memorised hard person fails either way.
  // A fresh validation population per trial: the promised rate is over
  // draws of both sides (a fixed pool of 40 hard records is off by its own
  // chance in every trial alike).
  std::mt19937_64 rng(21);
  int population_passed = 0, matched_passed = 0, memorised_passed = 0;
  const int trials = 400;
  for (int t = 0; t < trials; ++t) {
    Regions r = DrawRegions(rng);
    Population forget = Draw(rng, 1, 20, 0, +1.5);
    Population memorised = Draw(rng, 1, 20, 0, -2.5);
    NeighbourMatches m = Matches(rng, 20, r.hard, 10);
    CalibrationOptions o;
    o.alpha = 0.05;
    o.resamples = 1000;
    o.seed = static_cast<uint64_t>(t);
    Result<Calibration> population = CalibrateForgetSet(
        forget.scores, r.validation.scores, r.validation.subject, o);
    Result<Calibration> matched = CalibrateForgetSet(
        forget.scores, r.validation.scores, r.validation.subject, o, &m);
    Result<Calibration> kept = CalibrateForgetSet(
        memorised.scores, r.validation.scores, r.validation.subject, o, &m);
    ASSERT_TRUE(population.ok() && matched.ok() && kept.ok());
    population_passed += population->passed() ? 1 : 0;
    matched_passed += matched->passed() ? 1 : 0;
    memorised_passed += kept->passed() ? 1 : 0;
    if (t == 0) {
      EXPECT_EQ(matched->neighbours, 10);
      EXPECT_GT(matched->matched_records, 80);
      EXPECT_LE(matched->matched_records, 200);
      EXPECT_EQ(population->neighbours, 0);
      EXPECT_LT(population->confidence.value, population->confidence.lower);
    }
  }
  EXPECT_LE(population_passed, trials / 10) << population_passed;
  EXPECT_GE(matched_passed, trials * 92 / 100) << matched_passed;
  EXPECT_LE(memorised_passed, trials / 20) << memorised_passed;
}

TEST(CalibrationTest, TheLookAlikeFloorCatchesDamageThatMovesTheMatchedNull) {
  // The request's model: a memorised person whose look-alikes score like
  // typical never-seen records (log-loss shift -1, as the easy region).
  std::mt19937_64 rng(33);
  Regions r = DrawRegions(rng, -1.0);
  NeighbourMatches m = Matches(rng, 20, r.hard, 10);
  CalibrationOptions o;
  o.resamples = 1000;
  Population memorised = Draw(rng, 1, 20, 0, -2.5);
  Result<Calibration> before = CalibrateForgetSet(
      memorised.scores, r.validation.scores, r.validation.subject, o, &m);
  ASSERT_TRUE(before.ok());
  // A candidate that pushed the person and, with them, their look-alikes
  // far down (log-loss +3): against its own look-alikes the person looks
  // never-seen, so the matched null passes it.
  Population damaged_validation = r.validation;
  for (int64_t v : r.hard) {
    float& loss = damaged_validation.scores.losses[static_cast<size_t>(v)];
    loss *= static_cast<float>(std::exp(3.0));
    damaged_validation.scores.correct[static_cast<size_t>(v)] =
        std::exp(-loss) > 0.4 ? 1 : 0;
  }
  Population damaged = Draw(rng, 1, 20, 0, +3.0);
  Result<Calibration> after = CalibrateForgetSet(
      damaged.scores, damaged_validation.scores, r.validation.subject, o, &m);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->passed());
  // The floor, from the request's model's look-alikes, does not.
  EXPECT_LT(after->confidence.value, LookAlikeFloor(before->confidence));
  EXPECT_LT(after->accuracy.value, LookAlikeFloor(before->accuracy));
  // A retrain-like result (the person as never-seen look-alikes under the
  // request's model) stays above it.
  Population retrained = Draw(rng, 1, 20, 0, -1.0);
  Result<Calibration> exact = CalibrateForgetSet(
      retrained.scores, r.validation.scores, r.validation.subject, o, &m);
  ASSERT_TRUE(exact.ok());
  EXPECT_TRUE(exact->passed());
  EXPECT_GE(exact->confidence.value, LookAlikeFloor(before->confidence));
  EXPECT_GE(exact->accuracy.value, LookAlikeFloor(before->accuracy));
  // Applied, it becomes the damaged result's lower end, and it fails.
  Calibration floored = *after;
  ApplyLookAlikeFloor(*before, floored);
  EXPECT_FALSE(floored.passed());
  EXPECT_TRUE(floored.confidence.floored);
  EXPECT_EQ(floored.confidence.lower, LookAlikeFloor(before->confidence));
  // Where the null's own lower end is higher, it stays.
  Calibration kept = *exact;
  ApplyLookAlikeFloor(*before, kept);
  EXPECT_TRUE(kept.passed());
  EXPECT_EQ(kept.accuracy.lower,
            std::max(exact->accuracy.lower, LookAlikeFloor(before->accuracy)));
  // Not under the subjects null.
  Calibration subjects = *after;
  subjects.neighbours = 0;
  ApplyLookAlikeFloor(*before, subjects);
  EXPECT_TRUE(subjects.passed());
  // The floor is kLookAlikeFloorRadii half-widths under the lower bound.
  CalibratedStat st;
  st.lower = 0.78;
  st.upper = 1.0;
  EXPECT_NEAR(LookAlikeFloor(st), 0.78 - kLookAlikeFloorRadii * 0.11, 1e-12);
}

TEST(CalibrationTest, FewSharedNeighboursWidenTheMatchedNull) {
  // A person whose records all share the same 5 neighbours is judged by 5
  // records' outcomes: the bootstrap over them widens the interval beyond
  // what 20 draws from ~200 distinct neighbours give (expected about
  // sqrt(1/5 + 1/20) / sqrt(1/20 + 1/200) = 2.1 times). Losses spread
  // evenly, so that the 5 are as varied as the 1,000.
  Population validation;
  for (int i = 0; i < 1000; ++i) {
    validation.scores.losses.push_back(static_cast<float>(i) / 200.0F);
    validation.scores.correct.push_back(i < 500 ? 1 : 0);
    validation.subject.push_back(i / 20);
  }
  std::mt19937_64 rng(4);
  Population forget = Draw(rng, 1, 20, 0);
  NeighbourMatches shared;
  shared.k = 5;
  for (int i = 0; i < 20; ++i) {
    for (int64_t v : {0, 250, 500, 750, 999}) shared.index.push_back(v);
  }
  std::vector<int64_t> all(1000);
  for (int64_t i = 0; i < 1000; ++i) all[static_cast<size_t>(i)] = i;
  NeighbourMatches spread = Matches(rng, 20, all, 10);
  Result<Calibration> a = CalibrateForgetSet(forget.scores, validation.scores,
                                             validation.subject, {}, &shared);
  Result<Calibration> b = CalibrateForgetSet(forget.scores, validation.scores,
                                             validation.subject, {}, &spread);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->matched_records, 5);
  EXPECT_GT(a->confidence.null_sd, 1.5 * b->confidence.null_sd);
  EXPECT_GT(a->accuracy.null_sd, 1.5 * b->accuracy.null_sd);
}

TEST(CalibrationTest, TheMatchingsOffsetMovesTheNull) {
  // Never-seen records that score 0.2 of rank below their own neighbours:
  // the matched null moves down by as much, so a forget set that does the
  // same is judged by where look-alikes of never-seen records fall.
  Population validation;
  for (int i = 0; i < 1000; ++i) {
    validation.scores.losses.push_back(static_cast<float>(i) / 200.0F);
    validation.scores.correct.push_back(1);
    validation.subject.push_back(i / 20);
  }
  std::mt19937_64 rng(9);
  Population forget = Draw(rng, 1, 20, 0);
  std::vector<int64_t> all(1000);
  for (int64_t i = 0; i < 1000; ++i) all[static_cast<size_t>(i)] = i;
  NeighbourMatches plain = Matches(rng, 20, all, 10);
  NeighbourMatches moved = plain;
  // Reference records 300..399, each matched with the 10 records 200
  // places below it in loss (so about 0.2 higher in confidence rank).
  for (int64_t v = 300; v < 400; ++v) {
    moved.reference.push_back(v);
    for (int64_t j = 0; j < 10; ++j)
      moved.reference_index.push_back(v - 200 + j);
  }
  Result<Calibration> a = CalibrateForgetSet(forget.scores, validation.scores,
                                             validation.subject, {}, &plain);
  Result<Calibration> b = CalibrateForgetSet(forget.scores, validation.scores,
                                             validation.subject, {}, &moved);
  ASSERT_TRUE(a.ok() && b.ok()) << b.status().ToString();
  EXPECT_EQ(b->offset_records, 100);
  EXPECT_NEAR(b->offset_confidence, -0.1955, 1e-6);  // 195.5 places of 1,000
  // All hits: a record's smoothed rate is 10.5 / 11.
  EXPECT_NEAR(b->offset_accuracy, 1 - 10.5 / 11, 1e-9);
  EXPECT_NEAR(b->confidence.null_mean - a->confidence.null_mean,
              b->offset_confidence, 0.01);
  EXPECT_EQ(a->offset_records, 0);
  NeighbourMatches bad = moved;
  bad.reference_index.pop_back();
  EXPECT_EQ(CalibrateForgetSet(forget.scores, validation.scores,
                               validation.subject, {}, &bad)
                .status()
                .code(),
            Code::kInvalidArgument);
}

TEST(CalibrationTest, BadNeighbourMatchesAreAnError) {
  RecordScores one{{0.1F}, {1}};
  RecordScores two{{0.1F, 0.2F}, {1, 0}};
  NeighbourMatches short_row{2, {0}};
  NeighbourMatches out_of_range{1, {2}};
  NeighbourMatches none{2, {-1, -1}};
  NeighbourMatches one_neighbour{1, {0}};
  NeighbourMatches fine{2, {1, -1}};
  for (const NeighbourMatches* m :
       {&short_row, &out_of_range, &none, &one_neighbour}) {
    EXPECT_EQ(CalibrateForgetSet(one, two, {1, 2}, {}, m).status().code(),
              Code::kInvalidArgument);
  }
  EXPECT_TRUE(CalibrateForgetSet(one, two, {1, 2}, {}, &fine).ok());
}

TEST(CalibrationTest, BadInputIsAnError) {
  RecordScores empty;
  RecordScores one{{0.1F}, {1}};
  RecordScores two{{0.1F, 0.2F}, {1, 0}};
  EXPECT_EQ(CalibrateForgetSet(empty, two, {1, 2}, {}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(CalibrateForgetSet(one, two, {1}, {}).status().code(),
            Code::kInvalidArgument);
  CalibrationOptions bad;
  bad.alpha = 0;
  EXPECT_EQ(CalibrateForgetSet(one, two, {1, 2}, bad).status().code(),
            Code::kInvalidArgument);
  bad.alpha = 0.01;
  bad.resamples = 10;
  EXPECT_EQ(CalibrateForgetSet(one, two, {1, 2}, bad).status().code(),
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace lethe::core

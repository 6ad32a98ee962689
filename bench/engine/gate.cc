// gate_bench: the calibrated gate and the adaptive methods measured over
// people and seeds (issue 16).
//
//   gate_bench --scenario memorised-random|memorised-cluster|breast-cancer
//              [--seeds 4]
//              [--singles 30] [--groups 10] [--group-size 20]
//              [--adaptive N] [--methods finetune,random_label,...]
//              [--budget 0.25] [--margin M] [--neighbours K]
//              [--base-margin M] [--pool eval|tune]
//              [--threads 2] [--data DIR]
//
// Per seed (the recipe's seed, so a different original model each time):
// train the scenario's model, then for `singles` one-person requests and
// `groups` requests of `group-size` people, drawn per seed from the
// evaluation half of the people (--pool tune draws from the other half,
// where the gate's margin was chosen; its significance and the adaptive
// budget were fixed before the first run and not tuned):
// - retrain without them (exact) and apply the gate (Engine::CheckGate):
//   the share of exact results accepted;
// - apply the gate to the original model: the share rejected, over all
//   requests and over those whose retrain-vs-original difference exceeds
//   the calibrated noise (either statistic moved by more than half its
//   null interval's width);
// - on the first `adaptive` requests of each kind, run each method alone
//   with adaptive rounds: the share accepted, the speed-up over the retrain
//   and, for accepted results, the gap closed: 1 - |UA after - UA retrain| /
//   |UA before - UA retrain| (the forget metric), and the same over the four
//   metrics (GapPoints).
//
// Prints one line per request and a summary per seed and over seeds (mean
// and range). One scenario per process.
//
// breast-cancer: a real dataset with natural person-level subjects, the
// Wisconsin diagnostic breast cancer data as scikit-learn ships it
// (python3-sklearn: 569 patients, 30 measurements, malignant or benign),
// one record per patient. Features standardised on the training patients;
// 60% of the patients train (a seeded draw, fixed across seeds), 40% test;
// an MLP 30-64-2 trained 300 epochs so that it memorises.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lethe/core/dataset.h"
#include "lethe/core/engine.h"
#include "lethe/core/runtime.h"
#include "scenario.h"

namespace {

using lethe::core::Engine;
using lethe::core::GateCheck;
using lethe::core::Method;
using lethe::core::Result;
using lethe::core::UnlearnOutcome;
using lethe::core::UnlearnRequest;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Mean and range of per-seed figures.
struct Spread {
  std::vector<double> v;
  void Add(double x) {
    if (std::isfinite(x)) v.push_back(x);
  }
  std::string Text(const char* fmt = "%.1f") const {
    if (v.empty()) return "-";
    double sum = 0;
    for (double x : v) sum += x;
    char a[32], b[32], c[32];
    std::snprintf(a, sizeof a, fmt, sum / static_cast<double>(v.size()));
    std::snprintf(b, sizeof b, fmt, *std::min_element(v.begin(), v.end()));
    std::snprintf(c, sizeof c, fmt, *std::max_element(v.begin(), v.end()));
    return std::string(a) + " (" + b + "-" + c + ")";
  }
};

// The gate's verdicts on one seed's requests of one kind.
struct Verdicts {
  int exact_accepted = 0;
  int original_rejected = 0;
  int distinguishable = 0;
  int distinguishable_rejected = 0;
};

// Counts of one seed and one request kind.
struct Tally {
  int requests = 0;
  Verdicts gate;
  // With --neighbours: the same retrains and originals judged against the
  // subjects null, the baseline measured in the same run.
  Verdicts base;
  std::map<std::string, int> runs, accepted;
  std::map<std::string, double> speedup_sum, closed_ua_sum, closed_gap_sum;
  std::map<std::string, int> closed_n;
};

bool Distinguishable(const GateCheck& original, const GateCheck& exact) {
  auto moved = [](const lethe::core::CalibratedStat& o,
                  const lethe::core::CalibratedStat& e) {
    return std::abs(o.value - e.value) > (o.upper - o.lower) / 2;
  };
  return moved(original.calibration.accuracy, exact.calibration.accuracy) ||
         moved(original.calibration.confidence, exact.calibration.confidence);
}

void Count(Verdicts& v, const GateCheck& exact, const GateCheck& original) {
  const bool distinct = Distinguishable(original, exact);
  v.exact_accepted += exact.accepted ? 1 : 0;
  v.original_rejected += original.accepted ? 0 : 1;
  v.distinguishable += distinct ? 1 : 0;
  v.distinguishable_rejected += distinct && !original.accepted ? 1 : 0;
}

void PrintSeed(int seed, const std::string& label, int requests,
               const Verdicts& v) {
  std::printf(
      "seed %d %s: exact accepted %d/%d, original rejected %d/%d, "
      "distinguishable %d of which rejected %d\n",
      seed, label.c_str(), v.exact_accepted, requests, v.original_rejected,
      requests, v.distinguishable, v.distinguishable_rejected);
}

// One table row: the verdicts' shares, mean and range over seeds.
void PrintVerdicts(const std::string& label, const std::vector<Tally>& seeds,
                   Verdicts Tally::*which) {
  Spread exact, rejected, distinct, distinct_rejected;
  for (const Tally& t : seeds) {
    const Verdicts& v = t.*which;
    exact.Add(100.0 * v.exact_accepted / t.requests);
    rejected.Add(100.0 * v.original_rejected / t.requests);
    distinct.Add(100.0 * v.distinguishable / t.requests);
    if (v.distinguishable > 0) {
      distinct_rejected.Add(100.0 * v.distinguishable_rejected /
                            v.distinguishable);
    }
  }
  std::printf(
      "| %s | exact accepted %s%% | original rejected %s%% | "
      "distinguishable %s%% | of those rejected %s%% |\n",
      label.c_str(), exact.Text().c_str(), rejected.Text().c_str(),
      distinct.Text().c_str(), distinct_rejected.Text().c_str());
}

// What a request is run on.
struct Setting {
  lethe::core::Dataset data;
  lethe::core::Recipe recipe;
  lethe::core::Architecture arch;
};

Result<Setting> BreastCancer(const std::string& csv_path) {
  std::ifstream in(csv_path);
  if (!in) {
    return lethe::core::NotFoundError(
        csv_path + " not found (apt-get install python3-sklearn)");
  }
  std::string line;
  std::getline(in, line);  // "569,30,malignant,benign"
  std::vector<std::vector<float>> x;
  std::vector<int64_t> y;
  while (std::getline(in, line)) {
    std::vector<float> row;
    std::stringstream cells(line);
    std::string cell;
    while (std::getline(cells, cell, ',')) row.push_back(std::stof(cell));
    if (row.size() != 31) {
      return lethe::core::InvalidArgumentError("breast_cancer.csv: bad row");
    }
    y.push_back(static_cast<int64_t>(row.back()));
    row.pop_back();
    x.push_back(std::move(row));
  }
  const size_t n = x.size();
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(20261207);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<bool> train(n, false);
  for (size_t i = 0; i < n * 6 / 10; ++i) train[order[i]] = true;
  std::vector<double> mean(30, 0), sd(30, 0);
  double count = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!train[i]) continue;
    count += 1;
    for (size_t j = 0; j < 30; ++j) mean[j] += x[i][j];
  }
  for (double& m : mean) m /= count;
  for (size_t i = 0; i < n; ++i) {
    if (!train[i]) continue;
    for (size_t j = 0; j < 30; ++j) {
      sd[j] += (x[i][j] - mean[j]) * (x[i][j] - mean[j]);
    }
  }
  for (double& v : sd) v = std::sqrt(v / count) + 1e-12;
  lethe::core::FeatureSpec spec;
  spec.shape = {30};
  spec.type = lethe::core::FeatureType::kFloat32;
  spec.num_classes = 2;
  lethe::core::DatasetBuilder b(spec);
  for (size_t i = 0; i < n; ++i) {
    std::vector<float> v(30);
    for (size_t j = 0; j < 30; ++j) {
      v[j] = static_cast<float>((x[i][j] - mean[j]) / sd[j]);
    }
    lethe::core::Status st = b.AddValues(
        static_cast<int64_t>(i), "patient-" + std::to_string(i), y[i],
        train[i] ? lethe::core::Split::kTrain : lethe::core::Split::kTest, v);
    if (!st.ok()) return st;
  }
  Result<lethe::core::Dataset> d = std::move(b).Build();
  if (!d.ok()) return d.status();
  Setting s{std::move(d).value(), {}, {}};
  s.recipe.epochs = 300;
  s.recipe.batch_size = 32;
  s.recipe.lr = 0.05;
  s.recipe.seed = 1;
  s.arch.kind = lethe::core::ArchKind::kMlp;
  s.arch.input_shape = {30};
  s.arch.num_classes = 2;
  s.arch.hidden = {64};
  return s;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  lethe::bench::EnsurePassiveWaitPolicy(argv);
  std::string scenario_name = "memorised-random";
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string methods_arg = "finetune,neggrad_plus,random_label,salun";
  int seeds = 4, singles = 30, groups = 10, group_size = 20, adaptive = 10;
  int threads = 2;
  double budget = 0.25;
  double margin = lethe::core::Policy{}.gate_margin;
  int neighbours = lethe::core::Policy{}.gate_neighbours;
  // With --neighbours: the subjects null's margin in the baseline.
  double base_margin = lethe::core::Policy{}.gate_margin;
  bool tune_pool = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    auto num = [&] { return std::atoi(next().c_str()); };
    if (a == "--scenario") {
      scenario_name = next();
    } else if (a == "--seeds") {
      seeds = num();
    } else if (a == "--singles") {
      singles = num();
    } else if (a == "--groups") {
      groups = num();
    } else if (a == "--group-size") {
      group_size = num();
    } else if (a == "--adaptive") {
      adaptive = num();
    } else if (a == "--methods") {
      methods_arg = next();
    } else if (a == "--budget") {
      budget = std::atof(next().c_str());
    } else if (a == "--margin") {
      margin = std::atof(next().c_str());
    } else if (a == "--neighbours") {
      neighbours = num();
    } else if (a == "--base-margin") {
      base_margin = std::atof(next().c_str());
    } else if (a == "--pool") {
      tune_pool = next() == "tune";
    } else if (a == "--threads") {
      threads = num();
    } else if (a == "--data") {
      data_dir = next();
    } else {
      std::fprintf(stderr, "gate_bench: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  std::vector<Method> methods;
  for (const std::string& name : Split(methods_arg)) {
    Result<Method> m = lethe::core::ParseMethod(name);
    if (!m.ok()) {
      std::fprintf(stderr, "gate_bench: %s\n", m.status().ToString().c_str());
      return 2;
    }
    methods.push_back(*m);
  }
  lethe::core::InitRuntime(threads);
  Result<lethe::bench::FashionMnist> raw =
      lethe::bench::LoadFashionMnist(data_dir);
  if (!raw.ok()) {
    std::fprintf(stderr, "gate_bench: %s\n", raw.status().ToString().c_str());
    return 1;
  }
  Result<Setting> made = lethe::core::InvalidArgumentError("no scenario");
  if (scenario_name == "breast-cancer") {
    made = BreastCancer(
        "/usr/lib/python3/dist-packages/sklearn/datasets/data/"
        "breast_cancer.csv");
  } else {
    Result<lethe::bench::Scenario> fm =
        lethe::bench::MakeScenario(scenario_name, false, *raw);
    if (fm.ok()) {
      made = Setting{std::move(fm->data), fm->recipe, fm->arch};
    } else {
      made = fm.status();
    }
  }
  if (!made.ok()) {
    std::fprintf(stderr, "gate_bench: %s\n", made.status().ToString().c_str());
    return 1;
  }
  const Setting& sc = *made;
  // People with training records, sorted; odd positions are evaluated,
  // even ones kept for tuning.
  std::set<std::string> people;
  for (size_t i = 0; i < sc.data.record_ids().size(); ++i) {
    if (sc.data.splits()[i] == lethe::core::Split::kTrain) {
      people.insert(sc.data.subjects()[sc.data.subject_index()[i]]);
    }
  }
  std::vector<std::string> pool;
  int position = 0;
  for (const std::string& p : people) {
    if (position++ % 2 == (tune_pool ? 0 : 1)) pool.push_back(p);
  }
  std::printf(
      "gate_bench: %s, %zu people (%zu in the %s pool), %d seeds, %d "
      "singles, %d groups of %d, adaptive on %d of each, budget %.2f, margin "
      "%.3f, null %s, %d threads\n",
      scenario_name.c_str(), people.size(), pool.size(),
      tune_pool ? "tuning" : "evaluation", seeds, singles, groups, group_size,
      adaptive, budget, margin,
      neighbours > 0 ? (std::to_string(neighbours) +
                        " matched neighbours (baseline: whole subjects, "
                        "margin " +
                        std::to_string(base_margin) + ")")
                           .c_str()
                     : "whole subjects",
      threads);

  Engine engine{lethe::core::EngineOptions{}};
  std::map<std::string, std::vector<Tally>> tallies;  // kind -> per seed
  Spread train_s, check_s;
  for (int seed = 0; seed < seeds; ++seed) {
    lethe::core::Recipe recipe = sc.recipe;
    recipe.seed = sc.recipe.seed + static_cast<uint64_t>(seed);
    Clock::time_point t0 = Clock::now();
    Result<lethe::core::TrainedModel> model =
        engine.Train(sc.arch, recipe, sc.data);
    if (!model.ok()) {
      std::fprintf(stderr, "gate_bench: %s\n",
                   model.status().ToString().c_str());
      return 1;
    }
    const double trained_s = Since(t0);
    train_s.Add(trained_s);
    std::printf("seed %d: trained in %.1f s, train acc %.4f test acc %.4f\n",
                seed, trained_s, model->train_accuracy, model->test_accuracy);
    std::mt19937_64 rng(1000 + static_cast<uint64_t>(seed));
    for (const auto& [kind, count, size] :
         {std::tuple<std::string, int, int>{"single", singles, 1},
          {"group", groups, group_size}}) {
      Tally t;
      for (int r = 0; r < count; ++r) {
        std::vector<std::string> shuffled = pool;
        std::shuffle(shuffled.begin(), shuffled.end(), rng);
        shuffled.resize(static_cast<size_t>(size));
        UnlearnRequest req;
        req.model_bytes = model->model_bytes;
        req.dataset = &sc.data;
        req.forget_subjects = shuffled;
        req.recipe = recipe;
        req.trained_by_lethe = true;
        req.policy.chain = {Method::kRetrain};
        req.policy.adaptive_budget = budget;
        req.policy.gate_margin = margin;
        req.policy.gate_neighbours = neighbours;
        Clock::time_point tr = Clock::now();
        Result<UnlearnOutcome> exact = engine.Unlearn(req);
        const double retrain_s = Since(tr);
        if (!exact.ok()) {
          std::fprintf(stderr, "gate_bench: %s\n",
                       exact.status().ToString().c_str());
          return 1;
        }
        // Both checks on one prepared request (matching once), as the
        // engine's own path does; the time is per check.
        Clock::time_point tc = Clock::now();
        Result<std::vector<GateCheck>> checks =
            engine.CheckGates(req, {exact->model_bytes, model->model_bytes});
        check_s.Add(Since(tc) / 2);
        if (!checks.ok()) {
          std::fprintf(stderr, "gate_bench: gate check failed: %s\n",
                       checks.status().ToString().c_str());
          return 1;
        }
        const GateCheck* on_exact = &(*checks)[0];
        const GateCheck* on_original = &(*checks)[1];
        ++t.requests;
        const bool distinct = Distinguishable(*on_original, *on_exact);
        Count(t.gate, *on_exact, *on_original);
        if (neighbours > 0) {
          UnlearnRequest base = req;
          base.policy.gate_neighbours = 0;
          base.policy.gate_margin = base_margin;
          Result<std::vector<GateCheck>> b_checks =
              engine.CheckGates(base, {exact->model_bytes, model->model_bytes});
          if (!b_checks.ok()) {
            std::fprintf(stderr, "gate_bench: baseline gate check failed\n");
            return 1;
          }
          const GateCheck* b_exact = &(*b_checks)[0];
          const GateCheck* b_original = &(*b_checks)[1];
          const bool b_distinct = Distinguishable(*b_original, *b_exact);
          Count(t.base, *b_exact, *b_original);
          std::printf("  %s %d, subjects null: exact %s, original %s%s\n",
                      kind.c_str(), r,
                      b_exact->accepted ? "accepted" : b_exact->reason.c_str(),
                      b_original->accepted ? "accepted" : "rejected",
                      b_distinct ? ", distinguishable" : "");
        }
        std::printf(
            "  %s %d: %zu records; exact %s (acc %.3f in [%.3f, %.3f], conf "
            "%.3f in [%.3f, %.3f]); original "
            "%s (acc %.3f in [%.3f, %.3f], conf %.3f in [%.3f, %.3f])%s; "
            "retrain %.2f s\n",
            kind.c_str(), r,
            static_cast<size_t>(on_exact->calibration.forget_records),
            on_exact->accepted ? "accepted" : on_exact->reason.c_str(),
            on_exact->calibration.accuracy.value,
            on_exact->calibration.accuracy.lower,
            on_exact->calibration.accuracy.upper,
            on_exact->calibration.confidence.value,
            on_exact->calibration.confidence.lower,
            on_exact->calibration.confidence.upper,
            on_original->accepted ? "accepted" : "rejected",
            on_original->calibration.accuracy.value,
            on_original->calibration.accuracy.lower,
            on_original->calibration.accuracy.upper,
            on_original->calibration.confidence.value,
            on_original->calibration.confidence.lower,
            on_original->calibration.confidence.upper,
            distinct ? ", distinguishable" : "", retrain_s);
        if (r >= adaptive) continue;
        const lethe::core::Metrics& ref = exact->report.after;
        const lethe::core::Metrics& before = exact->report.before;
        for (Method m : methods) {
          UnlearnRequest a = req;
          a.policy.chain = {m};
          Result<UnlearnOutcome> out = engine.Unlearn(a);
          if (!out.ok()) {
            std::fprintf(stderr, "gate_bench: %s\n",
                         out.status().ToString().c_str());
            return 1;
          }
          const std::string name = lethe::core::MethodName(m);
          const lethe::core::Report& rep = out->report;
          ++t.runs[name];
          int rounds = 0;
          for (const auto& at : rep.attempts)
            rounds = std::max(rounds, at.round);
          const double speedup =
              retrain_s /
              std::max(1e-9, rep.timings.unlearn_s + rep.timings.verify_s);
          std::printf("    %s: %s after %d round(s), %.1fx", name.c_str(),
                      rep.ok ? "accepted" : "escalated", rounds, speedup);
          if (rep.ok) {
            ++t.accepted[name];
            t.speedup_sum[name] += speedup;
            const double ua_gap = std::abs(before.ua - ref.ua);
            if (ua_gap > 1e-9) {
              const double closed_ua =
                  100 * (1 - std::abs(rep.after.ua - ref.ua) / ua_gap);
              const double closed_gap =
                  100 *
                  (1 - lethe::core::GapPoints(rep.after, ref) /
                           std::max(1e-9, lethe::core::GapPoints(before, ref)));
              t.closed_ua_sum[name] += closed_ua;
              t.closed_gap_sum[name] += closed_gap;
              ++t.closed_n[name];
              std::printf(
                  ", UA %.3f (retrain %.3f, before %.3f): %.0f%% closed",
                  rep.after.ua, ref.ua, before.ua, closed_ua);
            }
          }
          std::printf("\n");
        }
        std::fflush(stdout);
      }
      tallies[kind].push_back(t);
      PrintSeed(seed, kind, t.requests, t.gate);
      if (neighbours > 0) {
        PrintSeed(seed, kind + ", subjects null", t.requests, t.base);
      }
      std::fflush(stdout);
    }
  }

  std::printf("\n## %s: mean (range) over %d seeds\n", scenario_name.c_str(),
              seeds);
  std::printf("training %s s; one gate check %s s\n",
              train_s.Text("%.1f").c_str(), check_s.Text("%.2f").c_str());
  for (const auto& [kind, per_seed] : tallies) {
    PrintVerdicts(kind, per_seed, &Tally::gate);
    if (neighbours > 0) {
      PrintVerdicts(kind + ", subjects null (same retrains)", per_seed,
                    &Tally::base);
    }
    for (Method m : methods) {
      const std::string name = lethe::core::MethodName(m);
      Spread share, speed, closed_ua, closed_gap;
      for (const Tally& t : per_seed) {
        auto get = [](const std::map<std::string, int>& c,
                      const std::string& k) {
          auto it = c.find(k);
          return it == c.end() ? 0 : it->second;
        };
        const int runs = get(t.runs, name);
        const int acc = get(t.accepted, name);
        const int closed = get(t.closed_n, name);
        if (runs > 0) share.Add(100.0 * acc / runs);
        if (acc > 0) speed.Add(t.speedup_sum.at(name) / acc);
        if (closed > 0) {
          closed_ua.Add(t.closed_ua_sum.at(name) / closed);
          closed_gap.Add(t.closed_gap_sum.at(name) / closed);
        }
      }
      std::printf(
          "|   %s | accepted %s%% | speed-up %sx | UA gap closed %s%% | "
          "4-metric gap closed %s%% |\n",
          name.c_str(), share.Text().c_str(), speed.Text().c_str(),
          closed_ua.Text().c_str(), closed_gap.Text().c_str());
    }
  }
  return 0;
}

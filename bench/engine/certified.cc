// The `certified` scenario: certified removal (core/newton.h) on a linear
// head over frozen random features (rf_logreg), trained on all 60,000
// Fashion-MNIST training images, against certified retraining of the same
// model in the same run.
#include "certified.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "lethe/core/methods.h"
#include "lethe/core/metrics.h"
#include "lethe/core/model.h"
#include "lethe/core/newton.h"
#include "lethe/core/report.h"

namespace lethe::bench {
namespace {

using core::Result;
using Clock = std::chrono::steady_clock;
using Module = torch::jit::Module;

void PrintRow(const char* label, double seconds, double speedup,
              const core::Metrics& m, const std::string& note) {
  std::printf("%-28s %8.3f %9.1fx %6.2f %6.2f %6.2f %6.3f  %s\n", label,
              seconds, speedup, 100 * m.ua, 100 * m.ra, 100 * m.ta, m.mia_auc,
              note.c_str());
}

}  // namespace

Result<std::string> RunCertified(const Scenario& s, const RunOptions& o) {
  Result<core::DeviceData> dd = core::ToDevice(s.data, core::Device{});
  if (!dd.ok()) return dd.status();
  std::vector<int64_t> train =
      core::IndicesOfSplit(s.data, core::Split::kTrain);
  core::Architecture arch = s.arch;
  arch.kind = core::ArchKind::kRfLogReg;
  arch.hidden = {o.newton_features};
  Result<Module> model = core::BuildModel(arch, 0);
  if (!model.ok()) return model.status();
  core::NewtonParams np;
  np.lambda = o.newton_lambda;
  np.sigma = o.newton_sigma;
  Clock::time_point t = Clock::now();
  at::Tensor noise;  // b, kept here only to measure true residuals
  Result<core::NewtonState> state =
      core::TrainCertified(*model, *dd, train, np, &noise);
  const double train_s = Since(t);
  if (!state.ok()) return state.status();
  const double budget = core::NewtonBudget(np);
  const std::string state_bytes = core::SerializeNewtonState(*state);
  std::printf(
      "certified: %zu train records, rf_logreg %lld random features, "
      "lambda %g, sigma %g, epsilon %g, delta %g -> budget %.4g; "
      "certified training %.2f s (load %s); state %.1f MB (%s)\n",
      train.size(), static_cast<long long>(o.newton_features), np.lambda,
      np.sigma, np.epsilon, np.delta, budget, train_s, LoadAverage().c_str(),
      state_bytes.size() / 1e6,
      state->has_cache() ? "Hessians cached" : "no cache");

  std::ostringstream json;
  json << "{\"scenario\":\"certified\",\"model\":\"rf_logreg\",\"features\":"
       << o.newton_features << ",\"train_records\":" << train.size()
       << ",\"lambda\":" << Num(np.lambda) << ",\"sigma\":" << Num(np.sigma)
       << ",\"epsilon\":" << Num(np.epsilon) << ",\"delta\":" << Num(np.delta)
       << ",\"budget\":" << Num(budget) << ",\"train_seconds\":" << Num(train_s)
       << ",\"state_bytes\":" << state_bytes.size() << ",\"requests\":[";
  if (o.train_only) return json.str() + "]";

  for (size_t i = 0; i < s.requests.size(); ++i) {
    const Request& r = s.requests[i];
    Result<core::Partition> p = core::PartitionBySubjects(s.data, r.subjects);
    if (!p.ok()) return p.status();
    std::vector<int64_t> sample = core::RetainSample(*p, 2000, 0);
    std::printf(
        "\n== certified / %s: %zu subjects, %zu forget, %zu retain; "
        "load %s ==\n",
        r.name.c_str(), r.subjects.size(), p->forget.size(), p->retain.size(),
        LoadAverage().c_str());
    std::printf("%-28s %8s %10s %6s %6s %6s %6s\n", "model", "time s",
                "speed-up", "UA", "RA", "TA", "MIA");
    Result<core::Metrics> m0 = core::ComputeMetrics(*model, *dd, *p, sample);
    if (!m0.ok()) return m0.status();

    t = Clock::now();
    Result<core::NewtonRemoval> nr =
        core::NewtonRemove(*model, *dd, *p, *state);
    const double step_s = Since(t);
    if (!nr.ok()) return nr.status();
    // Certified retraining as the engine does it (core/engine.cc): the same
    // parameters, a fresh secret noise.
    Result<Module> fresh = core::CloneModel(*model);
    if (!fresh.ok()) return fresh.status();
    t = Clock::now();
    Result<core::NewtonState> rs =
        core::TrainCertified(*fresh, *dd, p->retain, np);
    const double retrain_s = Since(t);
    if (!rs.ok()) return rs.status();
    Result<core::Metrics> mr = core::ComputeMetrics(*fresh, *dd, *p, sample);
    if (!mr.ok()) return mr.status();
    PrintRow("nothing (original)", 0, 0, *m0, "");
    PrintRow("certified retrain", retrain_s, 1, *mr, "exact");

    char note[240];
    std::snprintf(
        note, sizeof(note), "bound %.4g%s of budget %.4g%s", nr->bound,
        nr->measured ? (", measured bound " + Num(nr->measured_bound)).c_str()
                     : "",
        budget, nr->retrain_needed ? ": retrain needed" : "");
    json << (i ? "," : "") << "{\"request\":" << core::JsonString(r.name)
         << ",\"forget_records\":" << p->forget.size()
         << ",\"original\":" << MetricsJson(*m0)
         << ",\"retrain_seconds\":" << Num(retrain_s)
         << ",\"retrain\":" << MetricsJson(*mr)
         << ",\"step_seconds\":" << Num(step_s)
         << ",\"bound\":" << Num(nr->bound)
         << ",\"measured\":" << (nr->measured ? "true" : "false")
         << ",\"retrain_needed\":" << (nr->retrain_needed ? "true" : "false");
    if (nr->retrain_needed) {
      std::printf("%-28s %8.3f %9.1fx  %s\n", "newton step", step_s,
                  retrain_s / step_s, note);
    } else {
      Result<core::Metrics> mn =
          core::ComputeMetrics(nr->model, *dd, *p, sample);
      if (!mn.ok()) return mn.status();
      Result<double> before =
          core::GradientResidual(*model, *dd, p->retain, np.lambda, noise);
      Result<double> after =
          core::GradientResidual(nr->model, *dd, p->retain, np.lambda, noise);
      if (!before.ok() || !after.ok()) return core::InternalError("residual");
      std::string n = std::string(note) + "; residual " + Num(*before) +
                      " -> " + Num(*after) + "; |TA - retrain's| " +
                      Num(100 * std::abs(mn->ta - mr->ta)) + " points";
      PrintRow("newton step (certified)", step_s, retrain_s / step_s, *mn, n);
      json << ",\"newton\":" << MetricsJson(*mn)
           << ",\"residual_before\":" << Num(*before)
           << ",\"residual_after\":" << Num(*after)
           << ",\"speedup\":" << Num(retrain_s / step_s)
           << ",\"ta_diff_points\":" << Num(100 * std::abs(mn->ta - mr->ta));
    }
    json << "}";
  }
  json << "]";

  // Removals one subject at a time, as requests arrive, until the summed
  // bound would exceed the budget: how many a model absorbs between retrains.
  std::vector<std::string> queue = s.sequential;
  core::NewtonState st = *state;
  Module current = *model;
  std::vector<std::string> gone;
  int absorbed = 0, measured = 0;
  double total_s = 0, measured_s = 0;
  for (const std::string& subject : queue) {
    std::vector<std::string> with = gone;
    with.push_back(subject);
    Result<core::Partition> all = core::PartitionBySubjects(s.data, with);
    Result<core::Partition> one = core::PartitionBySubjects(s.data, {subject});
    if (!all.ok() || !one.ok()) return core::InternalError("partition");
    core::Partition step = *all;
    step.forget = one->forget;  // the model already stands for D minus `gone`
    t = Clock::now();
    Result<core::NewtonRemoval> nr = core::NewtonRemove(current, *dd, step, st);
    const double step_s = Since(t);
    total_s += step_s;
    if (!nr.ok()) return nr.status();
    if (nr->measured) {
      ++measured;
      measured_s += step_s;
    }
    if (nr->retrain_needed) break;
    current = nr->model;
    st = nr->state;
    gone = with;
    ++absorbed;
  }
  const int steps =
      absorbed + (absorbed < static_cast<int>(queue.size()) ? 1 : 0);
  std::printf(
      "\nsequential: %d of %zu single-subject removals absorbed before "
      "\"retrain needed\" (carried residual bound %.4g of %.4g); %d of "
      "%d steps measured their gradient change (%.3f s each)",
      absorbed, queue.size(), st.cumulative_bound, budget, measured, steps,
      measured ? measured_s / measured : 0.0);
  if (steps > measured) {
    std::printf(", the others took %.4f s each",
                (total_s - measured_s) / (steps - measured));
  }
  std::printf("\n");
  json << ",\"sequential\":{\"absorbed\":" << absorbed
       << ",\"tried\":" << queue.size()
       << ",\"cumulative_bound\":" << Num(st.cumulative_bound)
       << ",\"measured_steps\":" << measured << ",\"seconds\":" << Num(total_s)
       << "}";
  return json.str();
}

}  // namespace lethe::bench

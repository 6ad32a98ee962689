#include "runner.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "certified.h"
#include "lethe/core/engine.h"
#include "lethe/core/methods.h"
#include "lethe/core/model.h"
#include "lethe/core/sisa.h"
#include "sisa.h"

namespace lethe::bench {
namespace {

using core::Metrics;
using core::Result;
using core::Status;
using Module = torch::jit::Module;
using Clock = std::chrono::steady_clock;

struct Row {
  std::string label, guarantee = "approximate", note;
  bool ok = false;
  bool approximate = false;
  double seconds = 0;
  Metrics m;
  double true_forget_acc = -1;  // poison only
};

// Everything one forget request of a scenario shares.
class RequestRun {
 public:
  RequestRun(const Scenario& s, const Request& r, const RunOptions& o,
             const Module& original, const std::string& original_bytes,
             const core::DeviceData& dd, const at::Tensor& true_labels)
      : s_(s),
        r_(r),
        o_(o),
        original_(original),
        original_bytes_(original_bytes),
        dd_(dd),
        true_labels_(true_labels) {}

  Status Go(std::ostringstream& json, const core::SisaState* sisa,
            double sisa_train_s);

 private:
  core::MethodContext Ctx(const core::Recipe& recipe,
                          const core::MethodParams& params) const {
    return core::MethodContext{
        dd_, p_, recipe, params, core::TrainControl{}, o_.method_seed};
  }
  Status Measure(Module& m, Row& row);
  // Runs the method `repeats` times (it is deterministic: same seed, same
  // model) and keeps the median time; metrics of the first result.
  Row Timed(const std::string& label,
            const std::function<Result<Module>()>& method, int repeats = 1);
  Row DefaultPolicy(std::string& report_json);
  void Print(const Row& row) const;
  std::string RowJson(const Row& row) const;
  double Gap(const Row& row) const { return core::GapPoints(row.m, ref_); }
  double Closed(const Row& row) const {
    return 100.0 * (1.0 - Gap(row) / gap_nothing_);
  }
  double Speedup(const Row& row) const {
    return row.seconds > 0 ? retrain_s_ / row.seconds : 0;
  }

  const Scenario& s_;
  const Request& r_;
  const RunOptions& o_;
  const Module& original_;
  const std::string& original_bytes_;
  const core::DeviceData& dd_;
  const at::Tensor& true_labels_;
  core::Partition p_;
  std::vector<int64_t> sample_;
  Metrics ref_;
  double retrain_s_ = 0, gap_nothing_ = 0;
};

Status RequestRun::Measure(Module& m, Row& row) {
  Result<Metrics> metrics = core::ComputeMetrics(m, dd_, p_, sample_);
  if (!metrics.ok()) return metrics.status();
  row.m = *metrics;
  row.ok = true;
  if (s_.poisoned) {
    core::DeviceData truth{dd_.features, true_labels_, dd_.device};
    Result<core::EvalResult> e = core::Evaluate(m, truth, p_.forget);
    if (!e.ok()) return e.status();
    row.true_forget_acc = e->accuracy();
  }
  return core::OkStatus();
}

Row RequestRun::Timed(const std::string& label,
                      const std::function<Result<Module>()>& method,
                      int repeats) {
  Row row;
  row.label = label;
  Clock::time_point t = Clock::now();
  Result<Module> m = method();
  std::vector<double> times = {Since(t)};
  row.seconds = times[0];
  if (!m.ok()) {
    row.note = m.status().ToString();
    return row;
  }
  for (int i = 1; i < repeats; ++i) {
    t = Clock::now();
    if (!method().ok()) break;  // cannot differ from the first run's outcome
    times.push_back(Since(t));
  }
  std::sort(times.begin(), times.end());
  row.seconds = times[times.size() / 2];
  Status st = Measure(*m, row);
  if (!st.ok()) row.note = st.ToString();
  return row;
}

Row RequestRun::DefaultPolicy(std::string& report_json) {
  core::Engine engine(core::EngineOptions{core::Device{}});
  core::UnlearnRequest req;
  req.model_bytes = original_bytes_;
  req.dataset = &s_.data;
  req.forget_subjects = r_.subjects;
  req.recipe = s_.recipe;
  req.policy = core::Policy{};  // the default chain, gate and parameters
  Row row;
  row.label = "default policy";
  Clock::time_point t = Clock::now();
  Result<core::UnlearnOutcome> out = engine.Unlearn(req);
  row.seconds = Since(t);
  if (!out.ok()) {
    row.note = out.status().ToString();
    return row;
  }
  const core::Report& rep = out->report;
  report_json = core::ReportToJson(rep);
  for (const core::Attempt& a : rep.attempts) {
    if (!row.note.empty()) row.note += " -> ";
    row.note += a.method + ":" + a.outcome;
  }
  if (!rep.ok) return row;
  row.guarantee = rep.guarantee;
  Result<Module> m = core::LoadModel(out->model_bytes);
  if (m.ok()) {
    Status st = Measure(*m, row);
    if (!st.ok()) row.note += " " + st.ToString();
  }
  return row;
}

void RequestRun::Print(const Row& row) const {
  if (!row.ok) {
    std::printf("%-34s %7.2f %8.1fx  failed: %s\n", row.label.c_str(),
                row.seconds, Speedup(row), row.note.c_str());
    return;
  }
  std::printf("%-34s %7.2f %8.1fx %6.2f %6.2f %6.2f %6.3f %6.2f %7.1f",
              row.label.c_str(), row.seconds, Speedup(row), 100 * row.m.ua,
              100 * row.m.ra, 100 * row.m.ta, row.m.mia_auc, Gap(row),
              Closed(row));
  if (s_.poisoned) std::printf(" %6.2f", 100 * row.true_forget_acc);
  if (!row.note.empty()) std::printf("  %s", row.note.c_str());
  std::printf("\n");
}

std::string RequestRun::RowJson(const Row& row) const {
  std::string j = "{\"label\":" + core::JsonString(row.label) +
                  ",\"guarantee\":" + core::JsonString(row.guarantee) +
                  ",\"ok\":" + (row.ok ? "true" : "false") +
                  ",\"seconds\":" + Num(row.seconds) +
                  ",\"speedup\":" + Num(Speedup(row)) +
                  ",\"note\":" + core::JsonString(row.note);
  if (row.ok) {
    j += ",\"metrics\":" + MetricsJson(row.m) +
         ",\"gap_points\":" + Num(Gap(row)) +
         ",\"closed_pct\":" + Num(Closed(row));
    if (row.true_forget_acc >= 0) {
      j += ",\"forget_acc_true_labels\":" + Num(row.true_forget_acc);
    }
  }
  return j + "}";
}

Status RequestRun::Go(std::ostringstream& json, const core::SisaState* sisa,
                      double sisa_train_s) {
  Result<core::Partition> part =
      core::PartitionBySubjects(s_.data, r_.subjects);
  if (!part.ok()) return part.status();
  p_ = std::move(part).value();
  sample_ = core::RetainSample(p_, 2000, 0);
  std::string load = LoadAverage();
  std::printf(
      "\n== %s / %s: %zu subjects, %zu forget, %zu retain, %zu test "
      "records; load %s ==\n",
      s_.name.c_str(), r_.name.c_str(), r_.subjects.size(), p_.forget.size(),
      p_.retain.size(), p_.test.size(), load.c_str());
  std::printf("%-34s %7s %9s %6s %6s %6s %6s %6s %7s%s\n", "method", "time s",
              "speed-up", "UA", "RA", "TA", "MIA", "gap", "closed%",
              s_.poisoned ? " trueFA" : "");
  core::MethodParams defaults;
  std::vector<Row> rows;

  Row nothing;
  nothing.label = "nothing (original)";
  nothing.guarantee = "none";
  Module orig = original_;
  LETHE_CORE_RETURN_IF_ERROR(Measure(orig, nothing));
  Row ref = Timed("retrain (reference, seed 0)", [&] {
    return core::Retrain(original_, Ctx(s_.recipe, defaults));
  });
  if (!ref.ok) return core::InternalError("reference retrain: " + ref.note);
  ref.guarantee = "exact";
  ref_ = ref.m;
  gap_nothing_ = core::GapPoints(nothing.m, ref_);
  rows.push_back(nothing);
  rows.push_back(ref);
  double noise = 0;
  std::vector<double> retrain_times = {ref.seconds};
  for (uint64_t seed : {1, 2}) {
    core::Recipe r = s_.recipe;
    r.seed = seed;
    Row row = Timed("retrain seed " + std::to_string(seed),
                    [&] { return core::Retrain(original_, Ctx(r, defaults)); });
    row.guarantee = "exact";
    if (row.ok) noise = std::max(noise, Gap(row));
    retrain_times.push_back(row.seconds);
    rows.push_back(row);
  }
  // The three retrains do the same work; on a shared machine their times
  // vary by up to 2x, so speed-ups are against their median.
  std::sort(retrain_times.begin(), retrain_times.end());
  retrain_s_ = retrain_times[1];
  for (const Row& row : rows) Print(row);
  using Fn = Result<Module> (*)(const Module&, const core::MethodContext&);
  for (const Variant& v : s_.variants) {
    if (!o_.only.empty() &&
        std::none_of(o_.only.begin(), o_.only.end(), [&](const std::string& t) {
          return v.label.find(t) != std::string::npos;
        })) {
      continue;
    }
    Fn fn = v.method == core::Method::kFinetune      ? &core::Finetune
            : v.method == core::Method::kNegGradPlus ? &core::NegGradPlus
            : v.method == core::Method::kScrub       ? &core::Scrub
            : v.method == core::Method::kRandomLabel ? &core::RandomLabel
                                                     : &core::Salun;
    Row row = Timed(
        v.label, [&] { return fn(original_, Ctx(s_.recipe, v.params)); },
        o_.time_repeats);
    row.approximate = true;
    rows.push_back(row);
    Print(row);
  }
  std::string policy_report = "null";
  Row policy = DefaultPolicy(policy_report);
  rows.push_back(policy);
  Print(policy);
  std::printf(
      "(default policy time includes its own verification: metrics "
      "before and after each attempt)\n");

  // Targets on this request.
  double best4 = -1e9, best10 = -1e9;
  std::string best4_label, best10_label;
  for (const Row& row : rows) {
    if (!row.approximate || !row.ok) continue;
    double c = Closed(row), sp = Speedup(row);
    if (sp >= 4 && c > best4) best4 = c, best4_label = row.label;
    if (sp >= 10 && c > best10) best10 = c, best10_label = row.label;
  }
  bool policy_ok =
      policy.ok && (policy.guarantee == "exact" || Gap(policy) <= noise);
  std::printf(
      "noise floor %.2f points; do-nothing gap %.2f; default policy %s "
      "(%s, gap %.2f)\n",
      noise, gap_nothing_, policy_ok ? "MET" : "NOT MET",
      policy.guarantee.c_str(), policy.ok ? Gap(policy) : NAN);
  auto best = [](const std::string& label, double closed) {
    return label.empty() ? std::string("none")
                         : label + " " + Num(closed, "%.1f") + "%";
  };
  std::printf("best approximate at >=4x: %s; at >=10x: %s\n",
              best(best4_label, best4).c_str(),
              best(best10_label, best10).c_str());
  int64_t hwm_methods = StatusKb("VmHWM");
  std::printf("VmHWM after the MLP methods: %.1f MB\n", hwm_methods / 1024.0);

  json << "{\"request\":" << core::JsonString(r_.name)
       << ",\"load_avg_1m\":" << core::JsonString(load)
       << ",\"subjects\":" << r_.subjects.size()
       << ",\"forget_records\":" << p_.forget.size()
       << ",\"retain_records\":" << p_.retain.size()
       << ",\"test_records\":" << p_.test.size()
       << ",\"retrain_seconds_median_of_3\":" << Num(retrain_s_)
       << ",\"noise_floor_points\":" << Num(noise)
       << ",\"gap_nothing_points\":" << Num(gap_nothing_)
       << ",\"vmhwm_kb_after_mlp_methods\":" << hwm_methods << ",\"rows\":[";
  for (size_t i = 0; i < rows.size(); ++i)
    json << (i ? "," : "") << RowJson(rows[i]);
  json << "],\"default_policy_report\":" << policy_report
       << ",\"targets\":{\"default_policy_within_noise_or_exact\":"
       << (policy_ok ? "true" : "false")
       << ",\"best_approx_4x\":{\"label\":" << core::JsonString(best4_label)
       << ",\"closed_pct\":" << (best4_label.empty() ? "null" : Num(best4))
       << "},\"best_approx_10x\":{\"label\":" << core::JsonString(best10_label)
       << ",\"closed_pct\":" << (best10_label.empty() ? "null" : Num(best10))
       << "}}";

  if (sisa != nullptr) {
    Clock::time_point t = Clock::now();
    Result<core::SisaForgetResult> f =
        core::SisaForget(*sisa, s_.data, dd_, p_);
    double forget_s = Since(t);
    if (!f.ok()) return f.status();
    Result<Module> ens = core::SisaEnsemble(f->state);
    if (!ens.ok()) return ens.status();
    Row row;
    row.label = "sisa forget (8 shards)";
    row.guarantee = "exact";
    row.seconds = forget_s;
    LETHE_CORE_RETURN_IF_ERROR(Measure(*ens, row));
    std::string shards;
    for (int k : f->retrained_shards)
      shards += (shards.empty() ? "" : ",") + std::to_string(k);
    row.note = "shards " + shards + ", " + std::to_string(f->retrained_stages) +
               " stages";
    std::string exact = "not checked";
    double sisa_gap = NAN;  // against SISA retrained without the records
    if (o_.sisa_exact_check) {
      Result<core::Dataset> without = WithoutRecords(s_.data, p_.forget);
      if (!without.ok()) return without.status();
      Result<core::DeviceData> wd = core::ToDevice(*without, core::Device{});
      if (!wd.ok()) return wd.status();
      Result<Module> tmpl = core::BuildModel(s_.arch, s_.recipe.seed);
      if (!tmpl.ok()) return tmpl.status();
      Result<core::SisaState> fresh =
          core::TrainSisa(*tmpl, *without, *wd, sisa->params, s_.recipe);
      if (!fresh.ok()) return fresh.status();
      exact = core::SerializeSisaState(fresh.value()) ==
                      core::SerializeSisaState(f->state)
                  ? "bit-identical to TrainSisa without the records"
                  : "DIFFERS from TrainSisa without the records";
      Result<Module> ref = core::SisaEnsemble(*fresh);
      if (!ref.ok()) return ref.status();
      Result<Metrics> rm = core::ComputeMetrics(*ref, dd_, p_, sample_);
      if (!rm.ok()) return rm.status();
      sisa_gap = core::GapPoints(row.m, *rm);
    }
    // SISA's reference is SISA retrained from scratch without the records
    // (its guarantee is relative to that); the columns' gap and closed % are
    // against the full model's retrain, which a SISA ensemble is not.
    std::printf(
        "SISA (its own ensemble of 8 MLPs on 1/8 of the data each): "
        "training took %.2f s; gap to SISA retrained without the records: "
        "%s points (%s); the gap column below is to the full model's "
        "retrain\n",
        sisa_train_s, Num(sisa_gap, "%.2f").c_str(), exact.c_str());
    Print(row);
    json << ",\"sisa\":{\"train_seconds\":" << Num(sisa_train_s)
         << ",\"forget\":" << RowJson(row) << ",\"retrained_shards\":["
         << shards << "],\"exact_check\":" << core::JsonString(exact)
         << ",\"gap_vs_sisa_retrain_points\":" << Num(sisa_gap) << "}";
  }

  json << "}";
  return core::OkStatus();
}

}  // namespace

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t)
      .count();
}

std::string Num(double v, const char* fmt) {
  if (!std::isfinite(v)) return "null";
  char b[64];
  std::snprintf(b, sizeof(b), fmt, v);
  return b;
}

std::string MetricsJson(const core::Metrics& m) {
  return "{\"ua\":" + Num(m.ua) + ",\"ra\":" + Num(m.ra) +
         ",\"ta\":" + Num(m.ta) + ",\"mia_auc\":" + Num(m.mia_auc) + "}";
}

std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string one;
  f >> one;
  return one;
}

int64_t StatusKb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line, want = std::string(field) + ":";
  while (std::getline(f, line)) {
    if (line.rfind(want, 0) == 0)
      return std::strtol(line.c_str() + want.size(), nullptr, 10);
  }
  return -1;
}

Result<std::string> RunScenario(const Scenario& s, const RunOptions& o) {
  if (s.certified) return RunCertified(s, o);
  if (s.sisa_scale) return RunSisaScale(s, o);
  Result<core::DeviceData> dd = core::ToDevice(s.data, core::Device{});
  if (!dd.ok()) return dd.status();
  bool shared = dd->features.data_ptr() == s.data.features().data_ptr();
  at::Tensor true_labels = at::tensor(s.true_labels, at::kLong);
  std::vector<int64_t> train =
      core::IndicesOfSplit(s.data, core::Split::kTrain);
  std::vector<int64_t> test = core::IndicesOfSplit(s.data, core::Split::kTest);

  Result<Module> original = core::BuildModel(s.arch, s.recipe.seed);
  if (!original.ok()) return original.status();
  Clock::time_point t = Clock::now();
  LETHE_CORE_RETURN_IF_ERROR(core::TrainModel(*original, *dd, train, s.recipe));
  double train_s = Since(t);
  Result<core::EvalResult> tr = core::Evaluate(*original, *dd, train);
  Result<core::EvalResult> te = core::Evaluate(*original, *dd, test);
  if (!tr.ok() || !te.ok()) return core::InternalError("evaluating original");
  Result<std::string> bytes = core::SaveModel(*original);
  if (!bytes.ok()) return bytes.status();
  std::printf(
      "%s: %zu train + %zu test records, MLP 784-256-128-10, %d epochs "
      "lr %.2g linear decay, batch %d; training took %.2f s (load %s): "
      "train acc %.2f%%, test acc %.2f%%\n",
      s.name.c_str(), train.size(), test.size(), s.recipe.epochs, s.recipe.lr,
      s.recipe.batch_size, train_s, LoadAverage().c_str(), 100 * tr->accuracy(),
      100 * te->accuracy());

  std::ostringstream json;
  json << "{\"scenario\":" << core::JsonString(s.name)
       << ",\"train_records\":" << train.size()
       << ",\"test_records\":" << test.size()
       << ",\"epochs\":" << s.recipe.epochs
       << ",\"train_seconds\":" << Num(train_s)
       << ",\"train_accuracy\":" << Num(tr->accuracy())
       << ",\"test_accuracy\":" << Num(te->accuracy())
       << ",\"device_data_shares_dataset_tensors\":"
       << (shared ? "true" : "false") << ",\"requests\":[";
  if (o.train_only) return json.str() + "]";

  std::optional<core::SisaState> sisa;
  double sisa_s = 0;
  if (o.sisa) {
    t = Clock::now();
    Result<Module> tmpl = core::BuildModel(s.arch, s.recipe.seed);
    if (!tmpl.ok()) return tmpl.status();
    Result<core::SisaState> st =
        core::TrainSisa(*tmpl, s.data, *dd, core::SisaParams{}, s.recipe);
    sisa_s = Since(t);
    if (!st.ok()) return st.status();
    sisa = std::move(st).value();
  }
  for (size_t i = 0; i < s.requests.size(); ++i) {
    if (i) json << ",";
    RequestRun run(s, s.requests[i], o, *original, *bytes, *dd, true_labels);
    LETHE_CORE_RETURN_IF_ERROR(run.Go(json, sisa ? &*sisa : nullptr, sisa_s));
  }
  json << "]";
  return json.str();
}

}  // namespace lethe::bench

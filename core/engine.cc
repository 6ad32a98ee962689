// Engine: the policy chain around the methods (methods.h, newton.h, sisa.h).
#include "lethe/core/engine.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "guard.h"
#include "lethe/core/methods.h"
#include "lethe/core/model.h"
#include "lethe/core/newton.h"
#include "lethe/core/sha256.h"
#include "lethe/core/sisa.h"

namespace lethe::core {
namespace {

using internal::Guarded;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A model moved to the CPU and saved, with its hash.
Status Export(torch::jit::Module& m, std::string& bytes, std::string& sha) {
  LETHE_CORE_RETURN_IF_ERROR(Guarded("moving model to cpu", [&]() -> Status {
    m.to(at::Device(at::kCPU));
    return OkStatus();
  }));
  LETHE_CORE_ASSIGN_OR_RETURN(bytes, SaveModel(m));
  sha = Sha256Hex(bytes);
  return OkStatus();
}

Status ToDeviceInPlace(torch::jit::Module& m, const DeviceData& d) {
  return Guarded("moving model", [&]() -> Status {
    m.to(d.device);
    return OkStatus();
  });
}

// One Unlearn call.
class Run {
 public:
  Run(const UnlearnRequest& req, const EngineOptions& opt)
      : req_(req), opt_(opt) {}

  Result<UnlearnOutcome> Go();
  // Engine::CheckGates: the request's gate applied to `candidate`; the
  // first call prepares the run (data, original, matching) for later ones.
  Result<GateCheck> Check(std::string_view candidate);

 private:
  struct Produced {
    torch::jit::Module model;
    std::string sisa_state, newton_state;
  };

  Status Load();
  Status Prepare();
  TrainControl Budgeted() const;
  bool Skip(size_t i, const TrainControl& budgeted);
  Status TryMethod(Method m, const TrainControl& control);
  // An approximate method in rounds (policy.h, adaptive strength).
  Status TryAdaptive(Method m, const TrainControl& control);
  bool Adaptive(Method m) const {
    return GuaranteeOf(m) == Guarantee::kApproximate &&
           req_.policy.adaptive_budget > 0 && !sisa_;
  }
  // Records a's result as the chain's outcome.
  void Accept(Method m, Attempt a, Produced produced);
  // Records attempt `a` of m, whose run gave `r`: an error, a result that
  // failed the gate (when `gated`; its model is returned, for the next
  // adaptive round), or the accepted result (accepted_; nothing returned).
  // Failing to measure the result is the only error.
  Result<std::optional<torch::jit::Module>> Record(Method m, Attempt a,
                                                   Result<Produced> r,
                                                   bool gated);
  bool SkippedForCost(Attempt& a, const char* what, double cost,
                      const char* limit_name, double limit);
  // The metrics of `model` and, when the gate calibrates, its calibrated
  // check.
  struct Assessed {
    Metrics metrics;
    Calibration calibration;
  };
  Result<Assessed> Assess(torch::jit::Module& model);
  // The class of m's result on this model (policy.h); fills
  // report_.undeclared_buffers for parameters_retrained.
  Guarantee ResultGuarantee(Method m);
  Status Reference();
  Result<Produced> RunMethod(Method m, const TrainControl& control);
  // One run of an approximate method from `from` with `params`.
  Result<Produced> RunApproximate(Method m, const torch::jit::Module& from,
                                  const MethodContext& ctx);
  Result<Produced> RunSisa(const TrainControl& control);
  Result<Produced> RunNewton();
  Result<Produced> RetrainCertified();
  struct GateVerdict {
    AttemptFailure failure = AttemptFailure::kNone;
    std::string reason;
  };
  // The first check of the gate that `result` of method m fails, or kNone.
  GateVerdict GateFailure(Method m, const Assessed& result) const;
  MethodContext Context(const TrainControl& control) const {
    return MethodContext{data_,       partition_,
                         req_.recipe, req_.policy.params,
                         control,     req_.policy.seed};
  }

  const UnlearnRequest& req_;
  const EngineOptions& opt_;
  torch::jit::Module original_;
  DeviceData data_;
  Partition partition_;
  std::vector<int64_t> retain_sample_;
  std::vector<int64_t> validation_subject_;   // per Partition::validation row
  std::vector<char> validation_hits_before_;  // the request's model's
  NeighbourMatches neighbours_;     // the gate's matched null (k 0: none)
  bool assessed_original_ = false;  // by Prepare, which ends with it
  std::optional<SisaState> sisa_;
  std::optional<NewtonState> newton_;
  Report report_;
  std::optional<Produced> accepted_;  // the result the chain ended with
};

Status Run::Load() {
  if (req_.dataset == nullptr || req_.dataset->empty()) {
    return InvalidArgumentError("unlearn request has no dataset");
  }
  if (req_.forget_subjects.empty()) {
    return InvalidArgumentError("unlearn request names no subject to forget");
  }
  if (req_.policy.chain.empty()) {
    return InvalidArgumentError("policy has an empty method chain");
  }
  if (!(req_.policy.max_cost_fraction > 0)) {
    return InvalidArgumentError("policy max_cost_fraction must be > 0");
  }
  if (!(req_.policy.gate_alpha >= 0 && req_.policy.gate_alpha <= 0.5) ||
      !(req_.policy.gate_margin >= 0 && req_.policy.gate_margin <= 0.5)) {
    return InvalidArgumentError(
        "policy gate_alpha and gate_margin must be in [0, 0.5]");
  }
  if (req_.policy.gate_alpha > 0 && req_.policy.gate_resamples < 100) {
    return InvalidArgumentError("policy gate_resamples must be >= 100");
  }
  if (req_.policy.gate_neighbours < 0 || req_.policy.gate_neighbours == 1 ||
      req_.policy.gate_neighbours > 1000) {
    return InvalidArgumentError(
        "policy gate_neighbours must be 0 or in [2, 1000]");
  }
  if (!(req_.policy.adaptive_budget >= 0) || req_.policy.max_rounds < 1) {
    return InvalidArgumentError(
        "policy adaptive_budget must be >= 0 and max_rounds >= 1");
  }
  LETHE_CORE_RETURN_IF_ERROR(req_.recipe.Validate());
  LETHE_CORE_ASSIGN_OR_RETURN(original_, LoadModel(req_.model_bytes));
  LETHE_CORE_RETURN_IF_ERROR(CheckModelFits(original_, req_.dataset->spec()));
  LETHE_CORE_ASSIGN_OR_RETURN(
      partition_, PartitionBySubjects(*req_.dataset, req_.forget_subjects));
  if (!req_.sisa_state.empty()) {
    LETHE_CORE_ASSIGN_OR_RETURN(sisa_, ParseSisaState(req_.sisa_state));
  }
  if (!req_.newton_state.empty()) {
    LETHE_CORE_ASSIGN_OR_RETURN(newton_, ParseNewtonState(req_.newton_state));
  }
  LETHE_CORE_ASSIGN_OR_RETURN(data_, ToDevice(*req_.dataset, opt_.device));
  LETHE_CORE_RETURN_IF_ERROR(ToDeviceInPlace(original_, data_));
  retain_sample_ =
      RetainSample(partition_, req_.policy.retain_sample, req_.policy.seed);
  validation_subject_.reserve(partition_.validation.size());
  for (int64_t row : partition_.validation) {
    validation_subject_.push_back(
        req_.dataset->subject_index()[static_cast<size_t>(row)]);
  }
  return OkStatus();
}

Result<Run::Produced> Run::RunSisa(const TrainControl& control) {
  if (!sisa_) {
    return FailedPreconditionError(
        "model has no SISA state: train it with Engine::TrainSisa");
  }
  LETHE_CORE_ASSIGN_OR_RETURN(
      SisaForgetResult r,
      SisaForget(*sisa_, *req_.dataset, data_, partition_, control));
  Produced p;
  LETHE_CORE_ASSIGN_OR_RETURN(p.model, SisaEnsemble(r.state));
  LETHE_CORE_RETURN_IF_ERROR(ToDeviceInPlace(p.model, data_));
  p.sisa_state = SerializeSisaState(r.state);
  report_.sisa_retrained_shards = r.retrained_shards;
  report_.sisa_added_records = r.added_records;
  report_.sisa_rebuilt = r.rebuilt;
  return p;
}

Result<Run::Produced> Run::RunNewton() {
  if (!newton_) {
    return FailedPreconditionError(
        "model has no certified-removal state: train it with "
        "Engine::TrainCertified");
  }
  LETHE_CORE_ASSIGN_OR_RETURN(
      NewtonRemoval r, NewtonRemove(original_, data_, partition_, *newton_));
  report_.newton_bound = r.bound;
  report_.newton_budget = r.budget;
  report_.newton_cumulative_bound = r.state.cumulative_bound;
  if (r.retrain_needed) {
    return FailedPreconditionError(
        "retrain needed: gradient-residual bound " +
        std::to_string(newton_->cumulative_bound) + " + " +
        std::to_string(r.bound) +
        (r.measured
             ? " and the measured bound " + std::to_string(r.measured_bound)
             : std::string()) +
        " exceed the budget " + std::to_string(r.budget));
  }
  return Produced{r.model, "", SerializeNewtonState(r.state)};
}

Result<Run::Produced> Run::RetrainCertified() {
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m, CloneModel(original_));
  LETHE_CORE_ASSIGN_OR_RETURN(
      NewtonState s,
      TrainCertified(m, data_, partition_.retain, newton_->params));
  return Produced{m, "", SerializeNewtonState(s)};
}

Result<Run::Produced> Run::RunMethod(Method m, const TrainControl& control) {
  if (sisa_ && (m == Method::kSisa || m == Method::kRetrain)) {
    return RunSisa(control);  // retraining a SISA model = retraining shards
  }
  if (sisa_) {
    return FailedPreconditionError(
        std::string("a SISA model is unlearned by sisa or retrain, not ") +
        MethodName(m));
  }
  if (m == Method::kSisa) return RunSisa(control);
  if (m == Method::kNewton) return RunNewton();
  if (m == Method::kRetrain && newton_) return RetrainCertified();
  if (m == Method::kRetrain) {
    LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module out,
                                Retrain(original_, Context(control)));
    return Produced{out, "", ""};
  }
  return RunApproximate(m, original_, Context(control));
}

Result<Run::Produced> Run::RunApproximate(Method m,
                                          const torch::jit::Module& from,
                                          const MethodContext& ctx) {
  using Fn = Result<torch::jit::Module> (*)(const torch::jit::Module&,
                                            const MethodContext&);
  Fn fn = nullptr;
  switch (m) {
    case Method::kFinetune:
      fn = &Finetune;
      break;
    case Method::kNegGradPlus:
      fn = &NegGradPlus;
      break;
    case Method::kScrub:
      fn = &Scrub;
      break;
    case Method::kRandomLabel:
      fn = &RandomLabel;
      break;
    case Method::kSalun:
      fn = &Salun;
      break;
    default:
      return InternalError("unhandled method");
  }
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module out, fn(from, ctx));
  return Produced{out, "", ""};
}

Run::GateVerdict Run::GateFailure(Method m, const Assessed& result) const {
  const Policy& p = req_.policy;
  const Metrics& after = result.metrics;
  const Calibration& c = result.calibration;
  auto num = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return std::string(buf);
  };
  // Without validation data an approximate result has no evidence at all;
  // a certified one still has its (epsilon, delta) proof, and is checked
  // for utility only.
  const bool calibrated = p.gate_alpha > 0 && c.available;
  if (p.gate_alpha > 0 && !c.available &&
      GuaranteeOf(m) != Guarantee::kCertified) {
    return {AttemptFailure::kCalibration,
            "too little validation data to calibrate the gate: " +
                std::to_string(c.validation_records) + " records of " +
                std::to_string(c.validation_subjects) + " subjects (at least " +
                std::to_string(kMinValidationRecords) + " and " +
                std::to_string(kMinValidationSubjects) + ")"};
  }
  // Calibrated: the drop may exceed the maximum by the chance of the
  // validation records (CheckUtility); otherwise it is the plain drop.
  const double drop = calibrated ? c.accuracy_drop_points
                                 : 100.0 * (report_.before.va - after.va);
  const double allowed =
      calibrated ? c.allowed_drop_points : p.max_test_acc_drop;
  if (drop > allowed) {
    return {AttemptFailure::kTestAccuracy,
            "validation accuracy dropped " + num(drop) + " points > " +
                num(allowed) +
                (calibrated ? " (" + num(p.max_test_acc_drop) +
                                  " and the validation records' chance)"
                            : std::string())};
  }
  auto outside = [&](const char* what, const CalibratedStat& st) {
    return std::string(what) + " " + num(st.value) + " is outside [" +
           num(st.lower) + ", " + num(st.upper) +
           "], where never-seen groups of the same size fall (p = " +
           num(st.p_value) + ")" +
           (st.floored && st.value < st.lower
                ? "; the lower end is the look-alike floor: more than a "
                  "retrain forgets"
                : "");
  };
  if (calibrated && !c.accuracy.within()) {
    return {AttemptFailure::kForgetAccuracy,
            outside("forget-set accuracy", c.accuracy)};
  }
  if (calibrated && !c.confidence.within()) {
    return {AttemptFailure::kForgetConfidence,
            outside("forget-set confidence rank", c.confidence)};
  }
  if (after.mia_auc > p.max_mia_auc) {
    return {AttemptFailure::kMiaAuc,
            "MIA AUC " + num(after.mia_auc) + " > " + num(p.max_mia_auc)};
  }
  // ua = 1 - forget accuracy. With no forget record there is nothing to
  // compare (ua is 0 then).
  if (report_.forget_records > 0) {
    const double excess = 100.0 * ((1.0 - after.ua) - after.ta);
    if (excess > p.max_forget_acc_excess) {
      return {AttemptFailure::kForgetAccuracy,
              "forget accuracy exceeds test accuracy by " + num(excess) +
                  " points > " + num(p.max_forget_acc_excess)};
    }
  }
  return {};
}

Result<Run::Assessed> Run::Assess(torch::jit::Module& model) {
  Clock::time_point tv = Clock::now();
  LETHE_CORE_ASSIGN_OR_RETURN(
      Measurement m, Measure(model, data_, partition_, retain_sample_));
  Assessed out{m.metrics, {}};
  // The first model assessed is the request's own (Prepare).
  const bool original = !assessed_original_;
  if (original) validation_hits_before_ = m.validation.correct;
  if (req_.policy.gate_alpha > 0) {
    CalibrationOptions o;
    o.alpha = req_.policy.gate_alpha;
    o.margin = req_.policy.gate_margin;
    o.resamples = req_.policy.gate_resamples;
    o.seed = req_.policy.seed;
    LETHE_CORE_ASSIGN_OR_RETURN(
        out.calibration,
        CalibrateForgetSet(m.forget, m.validation, validation_subject_, o,
                           &neighbours_));
    const UtilityCheck u =
        CheckUtility(validation_hits_before_, m.validation.correct,
                     req_.policy.max_test_acc_drop, req_.policy.gate_alpha);
    out.calibration.accuracy_drop_points = u.drop_points;
    out.calibration.allowed_drop_points = u.allowed_points;
    if (!original) {
      ApplyLookAlikeFloor(report_.calibration_before, out.calibration);
    }
  }
  report_.timings.verify_s += Since(tv);
  assessed_original_ = true;  // (set only once it has been, whole)
  return out;
}

// The report's request fields, the request loaded, and the original model's
// metrics.
Status Run::Prepare() {
  Clock::time_point t0 = Clock::now();
  report_.device = opt_.device.ToString();
  report_.reproducibility =
      Reproducibility{TORCH_VERSION, at::get_num_threads(), report_.device,
                      !opt_.device.is_cuda()};
  report_.gate = Gate{req_.policy.max_mia_auc, req_.policy.max_test_acc_drop,
                      req_.policy.max_forget_acc_excess, req_.policy.gate_alpha,
                      req_.policy.adaptive_budget};
  report_.subjects_requested =
      static_cast<int64_t>(req_.forget_subjects.size());
  LETHE_CORE_RETURN_IF_ERROR(Load());
  report_.forget_records = static_cast<int64_t>(partition_.forget.size());
  report_.retain_records = static_cast<int64_t>(partition_.retain.size());
  report_.test_records = static_cast<int64_t>(partition_.test.size());
  report_.validation_records =
      static_cast<int64_t>(partition_.validation.size());
  report_.timings.load_s = Since(t0);
  if (req_.policy.gate_alpha > 0 && req_.policy.gate_neighbours > 0) {
    // Once per request: the matches depend on the data, not on the model.
    Clock::time_point tm = Clock::now();
    LETHE_CORE_ASSIGN_OR_RETURN(
        neighbours_,
        MatchForNull(data_, partition_.forget, partition_.validation,
                     validation_subject_, req_.policy.gate_neighbours,
                     kMatchingReferenceRecords, req_.policy.seed));
    report_.timings.verify_s += Since(tm);
  }

  LETHE_CORE_ASSIGN_OR_RETURN(Assessed before, Assess(original_));
  report_.before = before.metrics;
  report_.calibration_before = before.calibration;
  return OkStatus();
}

// The control of the non-exact methods: the policy's time budget, from now.
TrainControl Run::Budgeted() const {
  TrainControl budgeted;
  if (req_.policy.time_budget_s > 0) {
    budgeted.deadline =
        Clock::now() +
        std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(req_.policy.time_budget_s));
  }
  return budgeted;
}

// Whether an attempt costing `cost` of a retrain is over `limit` (then
// recorded as skipped, saying which).
bool Run::SkippedForCost(Attempt& a, const char* what, double cost,
                         const char* limit_name, double limit) {
  if (cost <= limit) return false;
  a.failure = AttemptFailure::kCost;
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s %.3g of a retrain > %s %.3g", what, cost,
                limit_name, limit);
  a.reason = buf;
  report_.attempts.push_back(a);
  return true;
}

// Whether chain[i] is skipped (then recorded as such): a non-exact method
// once the time budget is spent, or an approximate one estimated to cost
// more than max_cost_fraction of a retrain while an exact method follows.
bool Run::Skip(size_t i, const TrainControl& budgeted) {
  const std::vector<Method>& chain = req_.policy.chain;
  const Method m = chain[i];
  Attempt a;
  a.method = MethodName(m);
  a.outcome = "skipped";
  if (GuaranteeOf(m) != Guarantee::kExact && Clock::now() > budgeted.deadline) {
    a.failure = AttemptFailure::kTimeBudget;
    a.reason = "time budget spent";
    report_.attempts.push_back(a);
    return true;
  }
  // (On a SISA model an approximate method is an error, said by RunMethod.)
  if (Adaptive(m)) {
    const double cost = EstimatedCostFraction(
        m, AdaptiveRound(m, req_.policy.params, 0), req_.recipe,
        report_.retain_records, report_.forget_records);
    return SkippedForCost(a, "one round costs", cost, "adaptive_budget",
                          req_.policy.adaptive_budget);
  }
  if (GuaranteeOf(m) == Guarantee::kApproximate && !sisa_ &&
      std::any_of(chain.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                  chain.end(), [](Method later) {
                    return GuaranteeOf(later) == Guarantee::kExact;
                  })) {
    const double cost =
        EstimatedCostFraction(m, req_.policy.params, req_.recipe,
                              report_.retain_records, report_.forget_records);
    return SkippedForCost(a, "estimated cost", cost, "max_cost_fraction",
                          req_.policy.max_cost_fraction);
  }
  return false;
}

// Runs m, measures its result and checks it against the gate (non-exact
// methods), recording the attempt; sets accepted_ when the result passes.
// A method's failure is an attempt; only failing to measure is an error.
Status Run::TryMethod(Method m, const TrainControl& control) {
  if (Adaptive(m)) return TryAdaptive(m, control);
  Attempt a;
  a.method = MethodName(m);
  Clock::time_point tm = Clock::now();
  Result<Produced> r = RunMethod(m, control);
  a.seconds = Since(tm);
  return Record(m, std::move(a), std::move(r),
                GuaranteeOf(m) != Guarantee::kExact)
      .status();
}

Result<std::optional<torch::jit::Module>> Run::Record(Method m, Attempt a,
                                                      Result<Produced> r,
                                                      bool gated) {
  report_.timings.unlearn_s += a.seconds;
  if (!r.ok()) {
    a.outcome = "error";
    a.failure = AttemptFailure::kError;
    a.reason = r.status().ToString();
    report_.attempts.push_back(a);
    return std::optional<torch::jit::Module>();
  }
  LETHE_CORE_ASSIGN_OR_RETURN(Assessed result, Assess(r->model));
  a.has_metrics = true;
  a.metrics = result.metrics;
  a.calibration = result.calibration;
  GateVerdict gate = gated ? GateFailure(m, result) : GateVerdict{};
  if (gate.failure == AttemptFailure::kNone) {
    Accept(m, std::move(a), std::move(*r));
    return std::optional<torch::jit::Module>();
  }
  a.outcome = "failed_gate";
  a.failure = gate.failure;
  a.reason = gate.reason;
  report_.attempts.push_back(a);
  return std::optional<torch::jit::Module>(std::move(r->model));
}

Status Run::TryAdaptive(Method m, const TrainControl& control) {
  const Policy& p = req_.policy;
  std::optional<torch::jit::Module> current;  // the last round's result
  double spent = 0;
  for (int round = 0; round < p.max_rounds; ++round) {
    const MethodParams params = AdaptiveRound(m, p.params, round);
    const double cost = EstimatedCostFraction(
        m, params, req_.recipe, report_.retain_records, report_.forget_records);
    // Skip() has checked that the first round fits.
    if (round > 0 && spent + cost > p.adaptive_budget) break;
    spent += cost;
    Attempt a;
    a.method = MethodName(m);
    a.round = round + 1;
    const MethodContext ctx{data_,       partition_,
                            req_.recipe, params,
                            control,     p.seed + static_cast<uint64_t>(round)};
    Clock::time_point tm = Clock::now();
    Result<Produced> r = RunApproximate(m, current ? *current : original_, ctx);
    a.seconds = Since(tm);
    // A diverged round ends the method (escalation), as does acceptance.
    LETHE_CORE_ASSIGN_OR_RETURN(current,
                                Record(m, std::move(a), std::move(r), true));
    if (!current) return OkStatus();
  }
  return OkStatus();
}

void Run::Accept(Method m, Attempt a, Produced produced) {
  a.outcome = "accepted";
  a.failure = AttemptFailure::kNone;
  a.reason.clear();
  report_.ok = true;
  report_.method = a.method;
  report_.guarantee = GuaranteeName(ResultGuarantee(m));
  report_.after = a.metrics;
  report_.calibration_after = a.calibration;
  report_.attempts.push_back(std::move(a));
  accepted_ = std::move(produced);
}

Guarantee Run::ResultGuarantee(Method m) {
  // A SISA or certified state exists only for models lethe trained: their
  // retrains re-run that training.
  if (m != Method::kRetrain || sisa_ || newton_ || req_.trained_by_lethe) {
    return GuaranteeOf(m);
  }
  report_.undeclared_buffers = UndeclaredBuffers(original_);
  return report_.undeclared_buffers.empty() ? Guarantee::kRetrained
                                            : Guarantee::kParametersRetrained;
}

// The reference retrain (policy reference_retrain) and the gaps to it.
Status Run::Reference() {
  Clock::time_point tr = Clock::now();
  bool same = report_.method == "retrain" && !sisa_ && !newton_;
  Metrics ref = report_.after;
  if (!same) {
    LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module rm,
                                Retrain(original_, Context(TrainControl{})));
    LETHE_CORE_ASSIGN_OR_RETURN(
        ref, ComputeMetrics(rm, data_, partition_, retain_sample_));
  }
  report_.has_reference = true;
  report_.reference = ref;
  report_.gap_points = GapPoints(report_.after, ref);
  report_.gap_before_points = GapPoints(report_.before, ref);
  report_.timings.reference_s = Since(tr);
  return OkStatus();
}

Result<UnlearnOutcome> Run::Go() {
  LETHE_CORE_RETURN_IF_ERROR(Prepare());
  const TrainControl budgeted = Budgeted();
  const std::vector<Method>& chain = req_.policy.chain;
  for (size_t i = 0; i < chain.size() && !accepted_; ++i) {
    if (Skip(i, budgeted)) continue;
    const bool exact = GuaranteeOf(chain[i]) == Guarantee::kExact;
    LETHE_CORE_RETURN_IF_ERROR(
        TryMethod(chain[i], exact ? TrainControl{} : budgeted));
  }
  UnlearnOutcome out;
  if (!accepted_) {
    report_.failure = "no method of the chain produced an acceptable model";
    out.report = report_;
    return out;
  }
  if (req_.policy.reference_retrain) {
    LETHE_CORE_RETURN_IF_ERROR(Reference());
  }
  LETHE_CORE_RETURN_IF_ERROR(
      Export(accepted_->model, out.model_bytes, out.model_sha256));
  report_.model_sha256 = out.model_sha256;
  out.sisa_state = accepted_->sisa_state;
  out.newton_state = accepted_->newton_state;
  out.report = report_;
  return out;
}

Result<GateCheck> Run::Check(std::string_view candidate) {
  // Once for all of CheckGates' candidates: Prepare ends by assessing the
  // request's own model.
  if (!assessed_original_) LETHE_CORE_RETURN_IF_ERROR(Prepare());
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module model, LoadModel(candidate));
  LETHE_CORE_RETURN_IF_ERROR(CheckModelFits(model, req_.dataset->spec()));
  LETHE_CORE_RETURN_IF_ERROR(ToDeviceInPlace(model, data_));
  LETHE_CORE_ASSIGN_OR_RETURN(Assessed result, Assess(model));
  // Judged as an approximate result would be.
  GateVerdict verdict = GateFailure(Method::kFinetune, result);
  GateCheck out;
  out.accepted = verdict.failure == AttemptFailure::kNone;
  out.failure = verdict.failure;
  out.reason = verdict.reason;
  out.before = report_.before;
  out.calibration_before = report_.calibration_before;
  out.metrics = result.metrics;
  out.calibration = result.calibration;
  return out;
}

Result<TrainedModel> Finish(torch::jit::Module& m, const Dataset& dataset,
                            const DeviceData& data, Clock::time_point t0) {
  TrainedModel out;
  std::vector<int64_t> train = IndicesOfSplit(dataset, Split::kTrain);
  std::vector<int64_t> test = IndicesOfSplit(dataset, Split::kTest);
  LETHE_CORE_ASSIGN_OR_RETURN(EvalResult tr, Evaluate(m, data, train));
  out.train_accuracy = tr.accuracy();
  if (!test.empty()) {
    LETHE_CORE_ASSIGN_OR_RETURN(EvalResult te, Evaluate(m, data, test));
    out.test_accuracy = te.accuracy();
  }
  LETHE_CORE_RETURN_IF_ERROR(Export(m, out.model_bytes, out.model_sha256));
  out.seconds = Since(t0);
  return out;
}

// The fresh model, checked against the data, and the data on the device.
Result<std::pair<torch::jit::Module, DeviceData>> Prepare(
    const Architecture& arch, uint64_t seed, const Dataset& dataset,
    const Device& device) {
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m, BuildModel(arch, seed));
  LETHE_CORE_RETURN_IF_ERROR(CheckModelFits(m, dataset.spec()));
  if (IndicesOfSplit(dataset, Split::kTrain).empty()) {
    return InvalidArgumentError("dataset has no training records");
  }
  LETHE_CORE_ASSIGN_OR_RETURN(DeviceData d, ToDevice(dataset, device));
  LETHE_CORE_RETURN_IF_ERROR(ToDeviceInPlace(m, d));
  return std::make_pair(m, d);
}

}  // namespace

Result<TrainedModel> Engine::Train(const Architecture& arch,
                                   const Recipe& recipe,
                                   const Dataset& dataset) const {
  return Guarded("train", [&] { return TrainImpl(arch, recipe, dataset); });
}

Result<TrainedModel> Engine::TrainImpl(const Architecture& arch,
                                       const Recipe& recipe,
                                       const Dataset& dataset) const {
  Clock::time_point t0 = Clock::now();
  LETHE_CORE_RETURN_IF_ERROR(recipe.Validate());
  LETHE_CORE_ASSIGN_OR_RETURN(
      auto md, Prepare(arch, recipe.seed, dataset, options_.device));
  auto& [m, d] = md;
  LETHE_CORE_RETURN_IF_ERROR(
      TrainModel(m, d, IndicesOfSplit(dataset, Split::kTrain), recipe));
  return Finish(m, dataset, d, t0);
}

Result<TrainedModel> Engine::TrainSisa(const Architecture& arch,
                                       const Recipe& recipe,
                                       const SisaParams& sisa,
                                       const Dataset& dataset) const {
  Clock::time_point t0 = Clock::now();
  LETHE_CORE_RETURN_IF_ERROR(recipe.Validate());
  LETHE_CORE_ASSIGN_OR_RETURN(
      auto md, Prepare(arch, recipe.seed, dataset, options_.device));
  auto& [m, d] = md;
  LETHE_CORE_ASSIGN_OR_RETURN(
      SisaState s, ::lethe::core::TrainSisa(m, dataset, d, sisa, recipe));
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module ens, SisaEnsemble(s));
  LETHE_CORE_RETURN_IF_ERROR(ToDeviceInPlace(ens, d));
  LETHE_CORE_ASSIGN_OR_RETURN(TrainedModel out, Finish(ens, dataset, d, t0));
  out.sisa_state = SerializeSisaState(s);
  return out;
}

Result<TrainedModel> Engine::TrainCertified(const Architecture& arch,
                                            const NewtonParams& params,
                                            uint64_t seed,
                                            const Dataset& dataset) const {
  Clock::time_point t0 = Clock::now();
  if (arch.kind != ArchKind::kLogReg && arch.kind != ArchKind::kRfLogReg) {
    return InvalidArgumentError(
        "certified training needs architecture logreg or rf_logreg");
  }
  LETHE_CORE_ASSIGN_OR_RETURN(auto md,
                              Prepare(arch, seed, dataset, options_.device));
  auto& [m, d] = md;
  // `seed` initialises the model (rf_logreg's random features); the
  // objective's noise is secret, drawn afresh (core/newton.h).
  LETHE_CORE_ASSIGN_OR_RETURN(
      NewtonState s, ::lethe::core::TrainCertified(
                         m, d, IndicesOfSplit(dataset, Split::kTrain), params));
  LETHE_CORE_ASSIGN_OR_RETURN(TrainedModel out, Finish(m, dataset, d, t0));
  out.newton_state = SerializeNewtonState(s);
  return out;
}

Status Engine::Validate(std::string_view model_bytes,
                        const FeatureSpec& spec) const {
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m, LoadModel(model_bytes));
  return CheckModelFits(m, spec);
}

Result<GateCheck> Engine::CheckGate(const UnlearnRequest& request,
                                    std::string_view candidate) const {
  LETHE_CORE_ASSIGN_OR_RETURN(std::vector<GateCheck> checks,
                              CheckGates(request, {candidate}));
  return std::move(checks.front());
}

Result<std::vector<GateCheck>> Engine::CheckGates(
    const UnlearnRequest& request,
    const std::vector<std::string_view>& candidates) const {
  return Guarded("checking the gate", [&]() -> Result<std::vector<GateCheck>> {
    Run run(request, options_);
    std::vector<GateCheck> out;
    out.reserve(candidates.size());
    for (std::string_view candidate : candidates) {
      LETHE_CORE_ASSIGN_OR_RETURN(GateCheck check, run.Check(candidate));
      out.push_back(std::move(check));
    }
    return out;
  });
}

Result<UnlearnOutcome> Engine::Unlearn(const UnlearnRequest& request) const {
  return Guarded("unlearn", [&]() -> Result<UnlearnOutcome> {
    return Run(request, options_).Go();
  });
}

}  // namespace lethe::core

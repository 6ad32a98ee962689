#include "worker/engine/model_spec.h"

#include <string_view>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "lethe/v1/model.pb.h"

namespace lethe::worker {
namespace {

absl::Status FromJson(const std::string& json, google::protobuf::Message* m) {
  auto st = google::protobuf::util::JsonStringToMessage(json, m);
  if (!st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("stored model JSON does not parse: ", st.ToString()));
  }
  return absl::OkStatus();
}

core::Recipe ToRecipe(const v1::TrainingRecipe& r) {
  core::Recipe out;
  out.optimizer = r.optimizer() == v1::OPTIMIZER_ADAM
                      ? core::Optimizer::kAdam
                      : core::Optimizer::kSgdMomentum;
  out.lr = r.learning_rate();
  out.momentum = r.momentum() == 0 ? 0.9 : r.momentum();
  out.weight_decay = r.weight_decay();
  out.epochs = r.epochs();
  out.batch_size = r.batch_size();
  out.seed = r.seed();
  out.lr_schedule = r.schedule() == v1::LEARNING_RATE_SCHEDULE_LINEAR_DECAY
                        ? core::LrSchedule::kLinearDecay
                        : core::LrSchedule::kConstant;
  return out;
}

absl::StatusOr<core::Method> ToMethod(int method) {
  // proto3 enums are open: JSON and binary both carry numbers this build
  // has no name for (found by fuzz_model_spec: {"methods": 22}).
  constexpr std::string_view kPrefix = "UNLEARNING_METHOD_";
  const std::string& full =
      v1::UnlearningMethod_Name(static_cast<v1::UnlearningMethod>(method));
  if (!v1::UnlearningMethod_IsValid(method) ||
      full.compare(0, kPrefix.size(), kPrefix) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown unlearning method ", method));
  }
  const std::string name = absl::AsciiStrToLower(full.substr(kPrefix.size()));
  auto m = core::ParseMethod(name);
  if (!m.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown unlearning method ", name));
  }
  return m.value();
}

// The model row's three JSON columns as their lethe.v1 messages.
struct StoredModel {
  v1::Architecture arch;
  v1::TrainingRecipe recipe;
  v1::UnlearningPolicy policy;
};

absl::StatusOr<StoredModel> ParseStored(const storage::ModelRow& model) {
  StoredModel out;
  for (auto [json, msg] :
       {std::pair<const std::string*, google::protobuf::Message*>{
            &model.architecture_json, &out.arch},
        {&model.recipe_json, &out.recipe},
        {&model.policy_json, &out.policy}}) {
    if (auto st = FromJson(*json, msg); !st.ok()) return st;
  }
  return out;
}

// A built-in architecture (ignored when the model is TorchScript).
core::Architecture ToArchitecture(const v1::Architecture& arch,
                                  const storage::DatasetRow& dataset) {
  core::Architecture out;
  out.input_shape = dataset.feature_shape;
  out.num_classes = dataset.num_classes;
  switch (arch.kind()) {
    case v1::Architecture::KIND_LOGISTIC_REGRESSION:
      out.kind = core::ArchKind::kLogReg;
      break;
    case v1::Architecture::KIND_CNN:
      out.kind = core::ArchKind::kCnn;
      break;
    case v1::Architecture::KIND_RF_LOGISTIC_REGRESSION:
      out.kind = core::ArchKind::kRfLogReg;
      out.hidden.assign(arch.hidden_units().begin(), arch.hidden_units().end());
      break;
    default:
      out.kind = core::ArchKind::kMlp;
      out.hidden.assign(arch.hidden_units().begin(), arch.hidden_units().end());
  }
  return out;
}

// The policy's methods, or the default chain for the model's state.
absl::Status SetChain(const v1::UnlearningPolicy& policy, bool sisa,
                      bool newton, std::vector<core::Method>& chain) {
  chain.clear();
  for (int m : policy.methods()) {
    auto method = ToMethod(m);
    if (!method.ok()) return method.status();
    chain.push_back(*method);
  }
  if (chain.empty()) {
    if (sisa) {
      chain = {core::Method::kSisa};
    } else if (newton) {
      chain = {core::Method::kNewton, core::Method::kRetrain};
    } else {
      chain = {core::Method::kFinetune, core::Method::kRetrain};
    }
  }
  return absl::OkStatus();
}

// The approximate methods' and the head re-fit's parameters; 0 means "the
// engine's default" for each field (proto comments).
void SetMethodParams(const v1::UnlearningPolicy& policy,
                     core::MethodParams& params) {
  core::FinetuneParams& ft = params.finetune;
  if (policy.finetune().epochs() > 0) ft.epochs = policy.finetune().epochs();
  if (policy.finetune().learning_rate() > 0) {
    ft.lr = policy.finetune().learning_rate();
  }
  ft.warmup = policy.finetune().warmup_fraction();
  ft.max_grad_norm = policy.finetune().max_grad_norm();
  auto set_int = [](int v, int& out) {
    if (v > 0) out = v;
  };
  auto set = [](double v, double& out) {
    if (v > 0) out = v;
  };
  const v1::NegGradPlusConfig& n = policy.neggrad_plus();
  set_int(n.epochs(), params.neggrad_plus.epochs);
  set(n.learning_rate(), params.neggrad_plus.lr);
  set(n.beta(), params.neggrad_plus.beta);
  const v1::ScrubConfig& sc = policy.scrub();
  set_int(sc.epochs(), params.scrub.epochs);
  set_int(sc.max_epochs(), params.scrub.max_epochs);
  set(sc.learning_rate(), params.scrub.lr);
  set(sc.alpha(), params.scrub.alpha);
  set(sc.gamma(), params.scrub.gamma);
  set(sc.temperature(), params.scrub.temperature);
  const v1::RandomLabelConfig& rl = policy.random_label();
  set_int(rl.epochs(), params.random_label.epochs);
  set(rl.learning_rate(), params.random_label.lr);
  const v1::SalunConfig& su = policy.salun();
  set_int(su.epochs(), params.salun.epochs);
  set(su.learning_rate(), params.salun.lr);
  set(su.salient_fraction(), params.salun.salient);
  core::HeadRefitParams& hr = params.head_refit;
  hr.epochs = policy.head_refit().epochs();
  if (policy.head_refit().learning_rate() > 0) {
    hr.lr = policy.head_refit().learning_rate();
  }
  hr.batch = policy.head_refit().batch_size();
}

// The API's default time budget of one engine run (common.proto: "0 =
// 3600"); core's own default is no budget.
constexpr double kDefaultTimeBudgetSeconds = 3600;

// The gate and budgets; 0 means the default, which for the gate is core's
// (core::Policy), as the API documents.
void SetLimits(const v1::UnlearningPolicy& policy, core::Policy& p) {
  const core::Policy defaults;
  auto or_default = [](double value, double fallback) {
    return value == 0 ? fallback : value;
  };
  p.max_mia_auc = or_default(policy.max_mia_auc(), defaults.max_mia_auc);
  p.max_test_acc_drop =
      or_default(policy.max_test_accuracy_drop(), defaults.max_test_acc_drop);
  p.max_forget_acc_excess = or_default(policy.max_forget_accuracy_excess(),
                                       defaults.max_forget_acc_excess);
  p.gate_alpha = or_default(policy.gate_significance(), defaults.gate_alpha);
  p.gate_margin = policy.gate_margin() < 0
                      ? 0
                      : or_default(policy.gate_margin(), defaults.gate_margin);
  const int neighbours = policy.gate_neighbours();
  p.gate_neighbours = neighbours > 0   ? neighbours
                      : neighbours < 0 ? 0
                                       : defaults.gate_neighbours;
  const double adaptive = policy.adaptive_budget_fraction();
  p.adaptive_budget = adaptive < 0    ? 0
                      : adaptive == 0 ? defaults.adaptive_budget
                                      : adaptive;
  p.max_cost_fraction =
      or_default(policy.max_cost_fraction(), defaults.max_cost_fraction);
  p.time_budget_s =
      or_default(policy.time_budget_seconds(), kDefaultTimeBudgetSeconds);
}

}  // namespace

absl::StatusOr<ModelSpec> ParseModelSpec(const storage::ModelRow& model,
                                         const storage::DatasetRow& dataset) {
  absl::StatusOr<StoredModel> stored = ParseStored(model);
  if (!stored.ok()) return stored.status();
  const v1::Architecture& arch = stored->arch;
  const v1::UnlearningPolicy& policy = stored->policy;
  ModelSpec spec;
  spec.model_row = model;
  spec.dataset_row = dataset;
  spec.features = FeaturesOf(dataset);
  spec.recipe = ToRecipe(stored->recipe);
  spec.torchscript = arch.kind() == v1::Architecture::KIND_TORCHSCRIPT;
  spec.architecture = ToArchitecture(arch, dataset);

  core::Policy& p = spec.policy;
  if (policy.has_sisa()) {
    spec.sisa =
        core::SisaParams{policy.sisa().shards(), policy.sisa().slices()};
    spec.state_kind = StateKind::kSisa;
  }
  const bool newton =
      policy.has_newton() &&
      (arch.kind() == v1::Architecture::KIND_LOGISTIC_REGRESSION ||
       arch.kind() == v1::Architecture::KIND_RF_LOGISTIC_REGRESSION);
  if (newton) {
    spec.state_kind = StateKind::kNewton;
    p.params.newton.epsilon = policy.newton().epsilon();
    p.params.newton.delta = policy.newton().delta();
    p.params.newton.lambda = policy.newton().l2();
    if (policy.newton().sigma() > 0) {
      p.params.newton.sigma = policy.newton().sigma();
    }
  }
  if (absl::Status st =
          SetChain(policy, spec.sisa.has_value(), newton, p.chain);
      !st.ok()) {
    return st;
  }
  SetMethodParams(policy, p.params);
  SetLimits(policy, p);
  p.seed = stored->recipe.seed();
  spec.grace_seconds = policy.old_version_grace_seconds();
  return spec;
}

core::FeatureSpec FeaturesOf(const storage::DatasetRow& dataset) {
  core::FeatureSpec out;
  out.shape = dataset.feature_shape;
  out.type = dataset.feature_type == "uint8" ? core::FeatureType::kUint8
                                             : core::FeatureType::kFloat32;
  out.num_classes = dataset.num_classes;
  return out;
}

}  // namespace lethe::worker

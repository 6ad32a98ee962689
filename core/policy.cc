#include "lethe/core/policy.h"

#include <algorithm>

namespace lethe::core {

const char* MethodName(Method m) {
  switch (m) {
    case Method::kRetrain:
      return "retrain";
    case Method::kSisa:
      return "sisa";
    case Method::kNewton:
      return "newton";
    case Method::kFinetune:
      return "finetune";
    case Method::kNegGradPlus:
      return "neggrad_plus";
    case Method::kScrub:
      return "scrub";
    case Method::kRandomLabel:
      return "random_label";
    case Method::kSalun:
      return "salun";
  }
  return "unknown";
}

Result<Method> ParseMethod(const std::string& name) {
  for (Method m : {Method::kRetrain, Method::kSisa, Method::kNewton,
                   Method::kFinetune, Method::kNegGradPlus, Method::kScrub,
                   Method::kRandomLabel, Method::kSalun}) {
    if (name == MethodName(m)) return m;
  }
  return InvalidArgumentError(
      "unknown method '" + name +
      "': use retrain, sisa, newton, finetune, neggrad_plus, scrub, "
      "random_label or salun");
}

Guarantee GuaranteeOf(Method m) {
  switch (m) {
    case Method::kRetrain:
    case Method::kSisa:
      return Guarantee::kExact;
    case Method::kNewton:
      return Guarantee::kCertified;
    default:
      return Guarantee::kApproximate;
  }
}

double EstimatedCostFraction(Method m, const MethodParams& params,
                             const Recipe& recipe, int64_t retain,
                             int64_t forget) {
  if (retain <= 0 || recipe.epochs <= 0) return 0;
  const double r = static_cast<double>(retain);
  const double f = static_cast<double>(forget);
  double work = 0;
  switch (m) {
    case Method::kFinetune:
      work = params.finetune.epochs * r;
      break;
    case Method::kNegGradPlus:
      work = 2.0 * params.neggrad_plus.epochs * r;
      break;
    case Method::kScrub:
      work = params.scrub.epochs * r +
             std::min(params.scrub.epochs, params.scrub.max_epochs) * f;
      break;
    case Method::kRandomLabel:
      work = params.random_label.epochs * (r + f);
      break;
    case Method::kSalun:
      work = params.salun.epochs * (r + f);
      break;
    default:
      return 0;
  }
  work += std::max(0, params.head_refit.epochs) * r;
  return work / (static_cast<double>(recipe.epochs) * r);
}

const char* GuaranteeName(Guarantee g) {
  switch (g) {
    case Guarantee::kExact:
      return "exact";
    case Guarantee::kRetrained:
      return "retrained";
    case Guarantee::kParametersRetrained:
      return "parameters_retrained";
    case Guarantee::kCertified:
      return "certified";
    case Guarantee::kApproximate:
      return "approximate";
  }
  return "unknown";
}

MethodParams AdaptiveRound(Method m, const MethodParams& params, int round) {
  MethodParams p = params;
  // 1, 1, 2, 4, ... epochs: the gate is checked after 1, 2, 4, 8, ... in
  // all, so its cost (an evaluation of the forget, retain-sample, test and
  // validation records) stays logarithmic in the rounds' training.
  const int epochs = round <= 0 ? 1 : 1 << std::min(round - 1, 20);
  switch (m) {
    case Method::kFinetune:
      p.finetune.epochs = epochs;
      break;
    case Method::kNegGradPlus:
      p.neggrad_plus.epochs = epochs;
      break;
    case Method::kScrub:
      p.scrub.epochs = epochs;
      p.scrub.max_epochs = round < params.scrub.max_epochs ? epochs : 0;
      break;
    case Method::kRandomLabel:
      p.random_label.epochs = epochs;
      break;
    case Method::kSalun:
      p.salun.epochs = epochs;
      break;
    default:
      break;
  }
  return p;
}

}  // namespace lethe::core

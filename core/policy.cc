#include "lethe/core/policy.h"

namespace lethe::core {

const char* MethodName(Method m) {
  switch (m) {
    case Method::kRetrain: return "retrain";
    case Method::kSisa: return "sisa";
    case Method::kNewton: return "newton";
    case Method::kFinetune: return "finetune";
    case Method::kNegGradPlus: return "neggrad_plus";
    case Method::kScrub: return "scrub";
    case Method::kRandomLabel: return "random_label";
    case Method::kSalun: return "salun";
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

const char* GuaranteeName(Guarantee g) {
  switch (g) {
    case Guarantee::kExact: return "exact";
    case Guarantee::kCertified: return "certified";
    case Guarantee::kApproximate: return "approximate";
  }
  return "unknown";
}

}  // namespace lethe::core

#include "lethectl/enum_names.h"

#include <cctype>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace lethe::cli {
namespace {

// Names that read better than the mechanical short name.
struct Alias {
  absl::string_view value_name;
  absl::string_view alias;
};
constexpr Alias kAliases[] = {
    {"LEGAL_GROUND_GDPR_ART17_1A_NO_LONGER_NECESSARY", "gdpr-17-1a"},
    {"LEGAL_GROUND_GDPR_ART17_1B_CONSENT_WITHDRAWN", "gdpr-17-1b"},
    {"LEGAL_GROUND_GDPR_ART17_1C_OBJECTION", "gdpr-17-1c"},
    {"LEGAL_GROUND_GDPR_ART17_1D_UNLAWFUL_PROCESSING", "gdpr-17-1d"},
    {"LEGAL_GROUND_GDPR_ART17_1E_LEGAL_OBLIGATION", "gdpr-17-1e"},
    {"LEGAL_GROUND_GDPR_ART17_1F_CHILD_DATA", "gdpr-17-1f"},
    {"LEGAL_GROUND_CCPA_1798_105", "ccpa"},
    {"KIND_LOGISTIC_REGRESSION", "logreg"},
    {"KIND_RF_LOGISTIC_REGRESSION", "rf-logreg"},
    {"OPTIMIZER_SGD_MOMENTUM", "sgd"},
    {"LEARNING_RATE_SCHEDULE_LINEAR_DECAY", "linear"},
};

// "ErasureState" -> "ERASURE_STATE_", the prefix protobuf style gives the
// type's values.
std::string ValuePrefix(absl::string_view type_name) {
  std::string prefix;
  for (size_t i = 0; i < type_name.size(); ++i) {
    const char c = type_name[i];
    if (i > 0 && std::isupper(static_cast<unsigned char>(c))) prefix += '_';
    prefix += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return prefix + "_";
}

// Lower case, '_' as '-'.
std::string Normalize(absl::string_view text) {
  std::string out;
  for (const char c : text) {
    out += c == '_'
               ? '-'
               : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

}  // namespace

std::string EnumShortName(const google::protobuf::EnumDescriptor& type,
                          int value) {
  const google::protobuf::EnumValueDescriptor* v =
      type.FindValueByNumber(value);
  if (v == nullptr) return std::to_string(value);
  for (const Alias& a : kAliases) {
    if (a.value_name == v->name()) return std::string(a.alias);
  }
  absl::string_view name = v->name();
  const std::string prefix = ValuePrefix(type.name());
  if (absl::StartsWith(name, prefix)) name.remove_prefix(prefix.size());
  return Normalize(name);
}

std::optional<int> ParseEnumName(const google::protobuf::EnumDescriptor& type,
                                 absl::string_view text) {
  const std::string wanted = Normalize(text);
  for (int i = 0; i < type.value_count(); ++i) {
    const google::protobuf::EnumValueDescriptor* v = type.value(i);
    if (v->number() == 0) continue;
    if (wanted == EnumShortName(type, v->number()) ||
        wanted == Normalize(v->name())) {
      return v->number();
    }
  }
  return std::nullopt;
}

std::string EnumChoices(const google::protobuf::EnumDescriptor& type) {
  std::string out;
  for (int i = 0; i < type.value_count(); ++i) {
    if (type.value(i)->number() == 0) continue;
    if (!out.empty()) out += '|';
    out += EnumShortName(type, type.value(i)->number());
  }
  return out;
}

}  // namespace lethe::cli

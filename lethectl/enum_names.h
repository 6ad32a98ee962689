// The short, lower-case names lethectl prints and accepts for the API's
// enums: a value's name without its type's prefix, '_' written as '-'
// (ERASURE_STATE_NOTHING_TO_ERASE -> "nothing-to-erase"), except for a few
// documented aliases (LEGAL_GROUND_CCPA_1798_105 -> "ccpa",
// KIND_LOGISTIC_REGRESSION -> "logreg", OPTIMIZER_SGD_MOMENTUM -> "sgd").
#ifndef LETHE_LETHECTL_ENUM_NAMES_H_
#define LETHE_LETHECTL_ENUM_NAMES_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"

namespace lethe::cli {

std::string EnumShortName(const google::protobuf::EnumDescriptor& type,
                          int value);

// Parses a short name or the full value name, ignoring case and treating
// '-' and '_' alike. Never returns the UNSPECIFIED (0) value.
std::optional<int> ParseEnumName(const google::protobuf::EnumDescriptor& type,
                                 absl::string_view text);

// "a|b|c": the accepted short names, for help and error messages.
std::string EnumChoices(const google::protobuf::EnumDescriptor& type);

}  // namespace lethe::cli

#endif  // LETHE_LETHECTL_ENUM_NAMES_H_

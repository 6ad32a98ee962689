#include "lethectl/flags.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "lethectl/enum_names.h"

namespace lethe::cli {

std::optional<int> ReadEnumValue(FlagReader& reader, absl::string_view name,
                                 const google::protobuf::EnumDescriptor& type) {
  const ParsedFlags& flags = reader.flags();
  if (!flags.Has(name)) return std::nullopt;
  std::optional<int> value = ParseEnumName(type, flags.Get(name));
  if (!value) {
    reader.Fail(absl::StrCat("--", name, " must be one of ", EnumChoices(type),
                             ", not '", flags.Get(name), "'"));
  }
  return value;
}

std::optional<google::protobuf::Timestamp> ReadTime(FlagReader& reader,
                                                    absl::string_view name) {
  const ParsedFlags& flags = reader.flags();
  if (!flags.Has(name)) return std::nullopt;
  google::protobuf::Timestamp time;
  if (!google::protobuf::util::TimeUtil::FromString(flags.Get(name), &time)) {
    reader.Fail(absl::StrCat("--", name, " must be an RFC 3339 time such as ",
                             "2024-05-01T12:00:00Z, not '", flags.Get(name),
                             "'"));
    return std::nullopt;
  }
  return time;
}

}  // namespace lethe::cli

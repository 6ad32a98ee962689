// lethectl's flags: base/flags.h's parser (every lethe program takes its
// flags the same way), plus the reads that need protobuf: enum names
// (enum_names.h) and RFC 3339 times. Errors go to the FlagReader, as for
// its own typed reads.
#ifndef LETHE_LETHECTL_FLAGS_H_
#define LETHE_LETHECTL_FLAGS_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "base/flags.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/generated_enum_reflection.h"
#include "google/protobuf/timestamp.pb.h"

namespace lethe::cli {

using base::FlagReader;
using base::FlagSpec;
using base::FormatFlagHelp;
using base::ParsedFlags;
using base::ParseFlags;

// The value of an enum flag: one of the names enum_names.h documents, never
// the UNSPECIFIED value.
std::optional<int> ReadEnumValue(FlagReader& reader, absl::string_view name,
                                 const google::protobuf::EnumDescriptor& type);
template <typename E>
std::optional<E> ReadEnum(FlagReader& reader, absl::string_view name) {
  auto v =
      ReadEnumValue(reader, name, *google::protobuf::GetEnumDescriptor<E>());
  if (!v) return std::nullopt;
  return static_cast<E>(*v);
}

// The time of an RFC 3339 flag, when given.
std::optional<google::protobuf::Timestamp> ReadTime(FlagReader& reader,
                                                    absl::string_view name);

}  // namespace lethe::cli

#endif  // LETHE_LETHECTL_FLAGS_H_

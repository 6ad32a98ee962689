// How lethectl prints responses: with --json, each message as one line of
// proto3 JSON (MessageToJsonString; bytes fields in base64); otherwise
// concise text made by the command, with times in RFC 3339 and enum values
// by their short names (enum_names.h).
#ifndef LETHE_LETHECTL_OUTPUT_H_
#define LETHE_LETHECTL_OUTPUT_H_

#include <ostream>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/generated_enum_reflection.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "lethectl/enum_names.h"

namespace lethe::cli {

class Printer {
 public:
  Printer(bool json, std::ostream& out) : json_(json), out_(out) {}

  bool json() const { return json_; }

  // With --json, `message` as one JSON line; otherwise `text` (a newline is
  // added unless it ends with one; empty text prints nothing). Flushes, so that
  // streams show up at once in pipes.
  void Print(const google::protobuf::Message& message, absl::string_view text);

 private:
  bool json_;
  std::ostream& out_;
};

// RFC 3339 in UTC ("2024-05-01T12:00:00.250Z"); "-" when unset.
std::string FormatTime(const google::protobuf::Timestamp& time);

template <typename E>
std::string ShortName(E value) {
  return EnumShortName(*google::protobuf::GetEnumDescriptor<E>(),
                       static_cast<int>(value));
}

// "name:  value\n" with the name padded to a common width ("-" for an empty
// value), for detail views.
std::string Field(absl::string_view name, absl::string_view value);

}  // namespace lethe::cli

#endif  // LETHE_LETHECTL_OUTPUT_H_

#include "lethectl/output.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace lethe::cli {

void Printer::Print(const google::protobuf::Message& message,
                    absl::string_view text) {
  if (json_) {
    std::string line;
    // Printing a valid message cannot fail.
    (void)google::protobuf::util::MessageToJsonString(message, &line);
    out_ << line << '\n';
  } else if (!text.empty()) {
    out_ << text;
    if (!absl::EndsWith(text, "\n")) out_ << '\n';
  }
  out_.flush();
}

std::string FormatTime(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  return google::protobuf::util::TimeUtil::ToString(time);
}

std::string Field(absl::string_view name, absl::string_view value) {
  constexpr size_t kWidth = 14;
  std::string label = absl::StrCat(name, ":");
  if (label.size() < kWidth) label.resize(kWidth, ' ');
  return absl::StrCat(label, value.empty() ? "-" : value, "\n");
}

}  // namespace lethe::cli

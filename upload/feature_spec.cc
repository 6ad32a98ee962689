// FeatureSpec checks and the helpers internal.h declares.
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "upload/internal.h"
#include "upload/upload_parser.h"

namespace lethe::upload {
namespace internal {

std::string Excerpt(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  return absl::StrCat(Absl(s.substr(0, max)), "...");
}

absl::StatusOr<std::vector<ParsedRecord>> ReadAll(RecordReader* reader) {
  std::vector<ParsedRecord> records;
  while (true) {
    absl::StatusOr<bool> more = reader->Next(&records.emplace_back());
    if (!more.ok()) return more.status();
    if (!*more) break;
  }
  records.pop_back();
  return records;
}

}  // namespace internal

int64_t ElementCount(const FeatureSpec& spec) {
  int64_t n = 1;
  for (int64_t d : spec.shape) {
    if (d < 1 || d > kMaxFeatureElements) return 0;
    n *= d;
    if (n > kMaxFeatureElements) return n;  // over the limit; stop early
  }
  return spec.shape.empty() ? 0 : n;
}

absl::Status ValidateFeatureSpec(const FeatureSpec& spec) {
  std::string shape = absl::StrCat("[", absl::StrJoin(spec.shape, ","), "]");
  if (spec.shape.empty() || spec.shape.size() > kMaxFeatureDims) {
    return absl::InvalidArgumentError(absl::StrCat(
        "feature shape ", shape, " has ", spec.shape.size(),
        " dimensions; give 1 to ", kMaxFeatureDims, ", e.g. [1,28,28]"));
  }
  for (int64_t d : spec.shape) {
    if (d < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "feature shape ", shape, " has a dimension below 1; each is >= 1"));
    }
  }
  int64_t n = ElementCount(spec);
  if (n < 1 || n > kMaxFeatureElements) {
    return absl::InvalidArgumentError(
        absl::StrCat("feature shape ", shape, " has more than ",
                     kMaxFeatureElements, " elements; that is the limit"));
  }
  if (spec.type != FeatureType::kUint8 && spec.type != FeatureType::kFloat32) {
    return absl::InvalidArgumentError("feature type must be UINT8 or FLOAT32");
  }
  if (spec.num_classes < kMinClasses || spec.num_classes > kMaxClasses) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_classes is ", spec.num_classes, "; it must be ",
                     kMinClasses, "..", kMaxClasses));
  }
  return absl::OkStatus();
}

}  // namespace lethe::upload

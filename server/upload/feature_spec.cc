// FeatureSpec checks and the helpers internal.h declares.
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/upload/internal.h"
#include "server/upload/upload_parser.h"

namespace lethe::upload {
namespace internal {

std::string Excerpt(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  return absl::StrCat(Absl(s.substr(0, max)), "...");
}

namespace {

// RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int extra;
    uint32_t min, cp;
    if ((c & 0xE0) == 0xC0) {
      extra = 1, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    p += extra + 1;
  }
  return true;
}

}  // namespace

std::string SubjectIdProblem(std::string_view id) {
  if (id.empty()) return "subject_id is empty; every record needs one";
  if (id.size() > kMaxSubjectIdBytes) {
    return absl::StrCat("subject_id is ", id.size(), " bytes; at most ",
                        kMaxSubjectIdBytes, " are allowed");
  }
  if (!IsValidUtf8(id)) return "subject_id is not valid UTF-8";
  return "";
}

size_t CountLines(std::string_view text) {
  LineReader lines(text);
  std::string_view line;
  size_t n = 0;
  while (lines.Next(&line)) ++n;
  return n;
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

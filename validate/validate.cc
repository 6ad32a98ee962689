#include "validate/validate.h"

#include <cstdint>
#include <optional>

#include "absl/strings/str_cat.h"
#include "base/utf8.h"

namespace lethe::server {
namespace {

// The offset of the first C0 control character or DEL in `s`, if any. UTF-8
// never uses these bytes inside a multi-byte sequence.
std::optional<size_t> ControlCharacterAt(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return i;
  }
  return std::nullopt;
}

}  // namespace

absl::Status CheckSubjectId(std::string_view id) {
  if (id.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("subject_id is empty; it is required (1..",
                     kMaxSubjectIdBytes, " bytes of UTF-8)"));
  }
  if (id.size() > kMaxSubjectIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("subject_id is ", id.size(), " bytes; at most ",
                     kMaxSubjectIdBytes, " are allowed"));
  }
  if (!base::IsValidUtf8(id)) {
    return absl::InvalidArgumentError(
        "subject_id is not valid UTF-8 (RFC 3629: no overlong forms, "
        "surrogates or code points above U+10FFFF)");
  }
  if (auto at = ControlCharacterAt(id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("subject_id has a control character (U+0000..U+001F or "
                     "U+007F) at byte ",
                     *at, "; remove it"));
  }
  return absl::OkStatus();
}

bool IsUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

absl::Status CheckUuid(const std::string& field, const std::string& value) {
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  }
  if (!IsUuid(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field,
                     " must be a lower-case UUID such as "
                     "123e4567-e89b-12d3-a456-426614174000"));
  }
  return absl::OkStatus();
}

absl::Status CheckName(const std::string& field, const std::string& value) {
  if (value.empty() || value.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must have 1..128 characters"));
  }
  for (char c : value) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " may only contain [A-Za-z0-9._-]"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckMaxBytes(const std::string& field, const std::string& value,
                           size_t max) {
  if (value.size() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is longer than ", max, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status CheckText(const std::string& field, const std::string& value,
                       size_t max, bool required) {
  if (required && value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  }
  if (auto st = CheckMaxBytes(field, value, max); !st.ok()) return st;
  if (!base::IsValidUtf8(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be valid UTF-8"));
  }
  if (ControlCharacterAt(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must not contain control characters"));
  }
  return absl::OkStatus();
}

absl::Status CheckIdempotencyKey(const std::string& value) {
  if (value.empty() || value.size() > kMaxIdempotencyKeyBytes) {
    return absl::InvalidArgumentError(
        "idempotency_key is required: 1..128 printable ASCII characters");
  }
  for (unsigned char c : value) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          "idempotency_key may only contain printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

}  // namespace lethe::server

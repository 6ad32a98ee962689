#include "server/validate.h"

#include "absl/strings/str_cat.h"

namespace lethe::server {
namespace {

bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int extra = 0;
    if (c >= 0x80) {
      if ((c >> 5) == 0x6) {
        extra = 1;
      } else if ((c >> 4) == 0xe) {
        extra = 2;
      } else if ((c >> 3) == 0x1e) {
        extra = 3;
      } else {
        return false;
      }
    }
    if (i + extra >= s.size() && extra > 0) {
      return false;
    }
    for (int k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += 1 + extra;
  }
  return true;
}

}  // namespace

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
    return absl::InvalidArgumentError(absl::StrCat(
        field, " must be a lower-case UUID such as "
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
  if (!IsValidUtf8(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be valid UTF-8"));
  }
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " must not contain control characters"));
    }
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

// Field validation shared by the handlers. Each check returns
// INVALID_ARGUMENT naming the field and what is expected.
#ifndef LETHE_SERVER_VALIDATE_H_
#define LETHE_SERVER_VALIDATE_H_

#include <string>

#include "absl/status/status.h"

namespace lethe::server {

inline constexpr size_t kMaxSubjectIdBytes = 256;
inline constexpr size_t kMaxIdempotencyKeyBytes = 128;
inline constexpr size_t kMaxReferenceBytes = 1024;
inline constexpr size_t kMaxDescriptionBytes = 4096;
inline constexpr size_t kMaxScopeModels = 100;

bool IsUuid(const std::string& s);
absl::Status CheckUuid(const std::string& field, const std::string& value);
// 1..128 characters of [A-Za-z0-9._-].
absl::Status CheckName(const std::string& field, const std::string& value);
absl::Status CheckMaxBytes(const std::string& field, const std::string& value,
                           size_t max);
// 1..max bytes of valid UTF-8 without control characters.
absl::Status CheckText(const std::string& field, const std::string& value,
                       size_t max, bool required);
// 1..128 printable ASCII characters.
absl::Status CheckIdempotencyKey(const std::string& value);

}  // namespace lethe::server

#endif  // LETHE_SERVER_VALIDATE_H_

// Field validation shared by the handlers and the upload parsers. Each
// check returns INVALID_ARGUMENT naming the field and what is expected.
// Library lethe::validate: abseil only, so that lethe::upload (no gRPC)
// applies the same rules as the handlers.
#ifndef LETHE_VALIDATE_VALIDATE_H_
#define LETHE_VALIDATE_VALIDATE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace lethe::server {

inline constexpr size_t kMaxSubjectIdBytes = 256;
inline constexpr size_t kMaxIdempotencyKeyBytes = 128;
inline constexpr size_t kMaxReferenceBytes = 1024;
inline constexpr size_t kMaxDescriptionBytes = 4096;
inline constexpr size_t kMaxScopeModels = 100;

// The one rule for a data subject's id, wherever one enters lethe (the
// records of an upload, SubmitErasure), so that every subject an upload
// accepts can later be erased: 1..kMaxSubjectIdBytes bytes of valid UTF-8
// without control characters (U+0000..U+001F, U+007F). The message names
// `subject_id` and never quotes the id: subject ids are personal data, and
// errors are logged.
absl::Status CheckSubjectId(std::string_view id);

bool IsUuid(const std::string& s);
absl::Status CheckUuid(const std::string& field, const std::string& value);
// 1..128 characters of [A-Za-z0-9._-].
absl::Status CheckName(const std::string& field, const std::string& value);
absl::Status CheckMaxBytes(const std::string& field, const std::string& value,
                           size_t max);
// 1..max bytes of valid UTF-8 without control characters, the rules
// CheckSubjectId applies; required = false also accepts "". Never quotes
// `value`.
absl::Status CheckText(const std::string& field, const std::string& value,
                       size_t max, bool required);
// 1..128 printable ASCII characters.
absl::Status CheckIdempotencyKey(const std::string& value);

}  // namespace lethe::server

#endif  // LETHE_VALIDATE_VALIDATE_H_

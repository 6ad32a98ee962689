// How a raw data-subject id is turned into what lethe keeps.
//
//   subject_key = HMAC-SHA256(server secret, subject_id)
//       the lookup key for records (applied at upload and at intake);
//   commitment  = SHA-256("lethe-subject/v1" || salt || subject_id)
//       with a 32-byte salt that is never stored: the submitter's own
//       (SubmitErasureRequest.subject_salt), or a fresh one returned to it
//       once; the controller can open it to an auditor later.
//
// The raw id itself is never stored or logged.
#ifndef LETHE_SERVER_SUBJECT_H_
#define LETHE_SERVER_SUBJECT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace lethe::server {

inline constexpr char kCommitmentDomain[] = "lethe-subject/v1";
inline constexpr size_t kSubjectSaltBytes = 32;

std::string SubjectKey(std::string_view server_secret,
                       std::string_view subject_id);
std::string SubjectCommitment(std::string_view salt,
                              std::string_view subject_id);

// Loads the server secret: a file holding at least 32 bytes, or 64+ hex
// characters (surrounding whitespace ignored). FAILED_PRECONDITION if
// missing or too short.
absl::StatusOr<std::string> LoadServerSecret(const std::string& path);
// Writes a fresh 32-byte secret as hex with mode 0600; fails if it exists.
absl::Status CreateServerSecret(const std::string& path);

}  // namespace lethe::server

#endif  // LETHE_SERVER_SUBJECT_H_

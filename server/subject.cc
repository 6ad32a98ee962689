#include "server/subject.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "storage/hash.h"

namespace lethe::server {

std::string SubjectKey(std::string_view server_secret,
                       std::string_view subject_id) {
  return storage::HmacSha256(server_secret, subject_id);
}

std::string SubjectCommitment(std::string_view salt,
                              std::string_view subject_id) {
  std::string msg(kCommitmentDomain);
  msg.append(salt);
  msg.append(subject_id);
  return storage::Sha256(msg);
}

absl::StatusOr<std::string> LoadServerSecret(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot read the server secret file ", path,
        "; create one with `lethe admin create-secret --secrets-file ", path,
        "`"));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  std::string raw = buf.str();
  std::string text(absl::StripAsciiWhitespace(raw));
  if (auto hex = storage::FromHex(text); hex && hex->size() >= 32) return *hex;
  if (raw.size() >= 32) return raw;
  return absl::FailedPreconditionError(absl::StrCat(
      "server secret in ", path, " is too short: need 32 bytes or 64 hex"));
}

absl::Status CreateServerSecret(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("cannot create ", path, " (does it exist already?)"));
  }
  const std::string hex = storage::ToHex(storage::RandomBytes(32)) + "\n";
  const bool ok =
      ::write(fd, hex.data(), hex.size()) == static_cast<ssize_t>(hex.size());
  ::close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace lethe::server

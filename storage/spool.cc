#include "storage/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace lethe::storage {

absl::StatusOr<std::unique_ptr<SpoolFile>> SpoolFile::Create(
    const std::string& dir, bool hashed) {
  std::error_code ec;
  const std::string base =
      dir.empty() ? std::filesystem::temp_directory_path(ec).string() : dir;
  if (ec) return absl::InternalError("no temporary directory for spooling");
  std::string path = absl::StrCat(base, "/lethe-spool-XXXXXX");
  const int fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create a spool file in ",
                                            base, ": ", std::strerror(errno)));
  }
  ::unlink(path.c_str());  // gone with the descriptor, whatever happens
  return std::unique_ptr<SpoolFile>(new SpoolFile(fd, hashed));
}

SpoolFile::~SpoolFile() { ::close(fd_); }

absl::Status SpoolFile::Append(std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == ENOSPC || errno == EDQUOT)) {
      return absl::ResourceExhaustedError(
          "the spool directory is full; retry later");
    }
    if (n <= 0) {
      return absl::InternalError(
          absl::StrCat("cannot write a spool file: ", std::strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  if (hashed_) hash_.Update(absl::string_view(bytes.data(), bytes.size()));
  size_ += static_cast<int64_t>(bytes.size());
  return absl::OkStatus();
}

std::string SpoolFile::Digest() { return hash_.Finish(); }

absl::StatusOr<size_t> SpoolFile::Read(char* buf, size_t max) {
  for (;;) {
    const ssize_t n = ::read(fd_, buf, max);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) {
      return absl::InternalError(
          absl::StrCat("cannot read a spool file: ", std::strerror(errno)));
    }
  }
}

absl::Status SpoolFile::StartAt(int64_t offset) {
  if (offset < 0 || offset > size_) {
    return absl::InvalidArgumentError("a spool file's start past its end");
  }
  start_ = offset;
  return Rewind();
}

absl::Status SpoolFile::Rewind() {
  if (::lseek(fd_, start_, SEEK_SET) != start_) {
    return absl::InternalError("cannot rewind a spool file");
  }
  return absl::OkStatus();
}

}  // namespace lethe::storage

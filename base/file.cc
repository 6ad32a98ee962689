#include "base/file.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace lethe::base {
namespace {

// Whole files are read in pieces of this size.
constexpr size_t kReadBytes = 1 << 20;

absl::StatusOr<std::ifstream> Open(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (in) return in;
  const int error = errno;
  std::string message =
      absl::StrCat("cannot open ", path, ": ", std::strerror(error));
  if (error == ENOENT) return absl::NotFoundError(message);
  return absl::PermissionDeniedError(message);
}

}  // namespace

absl::Status CheckReadable(const std::string& path) {
  return Open(path).status();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::string content;
  absl::Status status =
      ForEachChunk(path, kReadBytes, [&](absl::string_view chunk) {
        content.append(chunk.data(), chunk.size());
        return true;
      });
  if (!status.ok()) return status;
  return content;
}

absl::Status ForEachChunk(
    const std::string& path, size_t chunk_bytes,
    const std::function<bool(absl::string_view)>& on_chunk) {
  absl::StatusOr<std::ifstream> in = Open(path);
  if (!in.ok()) return in.status();
  std::string buffer(chunk_bytes, '\0');
  while (*in) {
    in->read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = static_cast<size_t>(in->gcount());
    if (got > 0 && !on_chunk(absl::string_view(buffer.data(), got))) break;
  }
  if (in->bad()) {
    return absl::DataLossError(absl::StrCat("error reading ", path));
  }
  return absl::OkStatus();
}

}  // namespace lethe::base

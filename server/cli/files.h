// Local files: whole small ones (PEM, JSON) and large ones in chunks.
// Errors name the file: NOT_FOUND if it is missing, PERMISSION_DENIED if it
// cannot be opened, DATA_LOSS if reading fails part way.
#ifndef LETHE_SERVER_CLI_FILES_H_
#define LETHE_SERVER_CLI_FILES_H_

#include <cstddef>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lethe::cli {

// Files sent to the server go in chunks of this size (the API allows 4 MiB).
inline constexpr size_t kUploadChunkBytes = 1 << 20;

// OK if the file can be opened for reading.
absl::Status CheckReadable(const std::string& path);

absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

// Calls `on_chunk` with consecutive pieces of the file of at most
// kUploadChunkBytes (none for an empty file); stops early, returning OK, if
// it returns false.
absl::Status ForEachChunk(
    const std::string& path,
    const std::function<bool(absl::string_view)>& on_chunk);

}  // namespace lethe::cli

#endif  // LETHE_SERVER_CLI_FILES_H_

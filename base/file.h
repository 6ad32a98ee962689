// Local files: whole small ones (PEM, JSON, config) and large ones in
// chunks. Errors name the file: NOT_FOUND if it is missing,
// PERMISSION_DENIED if it cannot be opened otherwise, DATA_LOSS if reading
// fails part way.
#ifndef LETHE_BASE_FILE_H_
#define LETHE_BASE_FILE_H_

#include <cstddef>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lethe::base {

// OK if the file can be opened for reading.
absl::Status CheckReadable(const std::string& path);

// The whole content of the file, read as binary.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Calls `on_chunk` with consecutive pieces of the file of at most
// `chunk_bytes` (> 0; none for an empty file); stops early, returning OK,
// if it returns false.
absl::Status ForEachChunk(
    const std::string& path, size_t chunk_bytes,
    const std::function<bool(absl::string_view)>& on_chunk);

}  // namespace lethe::base

#endif  // LETHE_BASE_FILE_H_

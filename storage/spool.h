// SpoolFile: bytes kept in an unlinked temporary file instead of memory,
// optionally hashed as they are written, then read back in pieces (issues
// 17 and 19): the server spools a model artifact or an upload part as it
// arrives, so that a registration holds one stream message of it in memory
// whatever its size; the worker spools a training set as it streams from
// the database, for the engine to read.
//
// The file is unlinked as soon as it is created, so nothing is left behind
// when the call ends or the process dies. Not thread-safe: one call owns it.
#ifndef LETHE_STORAGE_SPOOL_H_
#define LETHE_STORAGE_SPOOL_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/crypto.h"
#include "storage/model_store.h"

namespace lethe::storage {

class SpoolFile final : public ByteStream {
 public:
  // A new empty file in `dir` (empty: the system's temporary directory).
  // `hashed`: Append keeps the SHA-256 that Digest returns.
  static absl::StatusOr<std::unique_ptr<SpoolFile>> Create(
      const std::string& dir, bool hashed = true);
  ~SpoolFile() override;
  SpoolFile(const SpoolFile&) = delete;
  SpoolFile& operator=(const SpoolFile&) = delete;

  // Appends `bytes`; RESOURCE_EXHAUSTED when the disk is full.
  absl::Status Append(std::string_view bytes);
  // The raw SHA-256 of everything appended (hashed files only). Call once,
  // after the last Append.
  std::string Digest();

  // From now on the file reads, rewinds and sizes as if it began `offset`
  // bytes in (a reply's tail after its head, say), and is at that start.
  // INVALID_ARGUMENT past the end.
  absl::Status StartAt(int64_t offset);

  absl::StatusOr<size_t> Read(char* buf, size_t max) override;
  absl::Status Rewind() override;
  int64_t size() const override { return size_ - start_; }

 private:
  SpoolFile(int fd, bool hashed) : fd_(fd), hashed_(hashed) {}

  const int fd_;
  const bool hashed_;
  int64_t size_ = 0;
  int64_t start_ = 0;
  base::Sha256Stream hash_;
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_SPOOL_H_

// SpoolFile: a model artifact as it arrives, kept in an unlinked temporary
// file instead of memory, hashed as it is written, then read back in pieces
// by the store (issues 17 and 19: a registration holds one stream message
// of the artifact in memory, whatever its size).
//
// The file is unlinked as soon as it is created, so nothing is left behind
// when the call ends or the process dies. Not thread-safe: one call owns it.
#ifndef LETHE_SERVER_SPOOL_H_
#define LETHE_SERVER_SPOOL_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/crypto.h"
#include "storage/model_store.h"

namespace lethe::server {

class SpoolFile final : public storage::ByteStream {
 public:
  // A new empty file in `dir` (empty: the system's temporary directory).
  static absl::StatusOr<std::unique_ptr<SpoolFile>> Create(
      const std::string& dir);
  ~SpoolFile() override;
  SpoolFile(const SpoolFile&) = delete;
  SpoolFile& operator=(const SpoolFile&) = delete;

  // Appends `bytes`; RESOURCE_EXHAUSTED when the disk is full.
  absl::Status Append(std::string_view bytes);
  // The raw SHA-256 of everything appended. Call once, after the last
  // Append.
  std::string Digest();

  absl::StatusOr<size_t> Read(char* buf, size_t max) override;
  absl::Status Rewind() override;
  int64_t size() const override { return size_; }

 private:
  explicit SpoolFile(int fd) : fd_(fd) {}

  const int fd_;
  int64_t size_ = 0;
  base::Sha256Stream hash_;
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_SPOOL_H_

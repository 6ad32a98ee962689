// ModelStore: registered models, their versions and artifacts.
// Thread-safe. Artifacts are content-addressed by SHA-256 (the PostgreSQL
// store keeps them in a table or on a shared volume).
#ifndef LETHE_STORAGE_MODEL_STORE_H_
#define LETHE_STORAGE_MODEL_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/types.h"

namespace lethe::storage {

struct ModelPage {
  std::vector<ModelRow> rows;
  std::optional<PageCursor> next;
};

struct VersionPage {
  std::vector<ModelVersionRow> rows;
  int64_t next_before_version = 0;  // 0: last page
};

// Artifacts move in chunks of at most this many bytes: stored as rows of
// this size, read back and streamed to clients one at a time, so that no
// layer holds a whole model file.
inline constexpr size_t kArtifactChunkBytes = size_t{1} << 20;

// The bytes of an artifact being stored, read in pieces: a spool file on
// the server, a string in a worker or a test. Rewind starts over, so that
// a transaction that is retried reads them again. Not thread-safe.
class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Up to `max` bytes into `buf`; 0 at the end.
  virtual absl::StatusOr<size_t> Read(char* buf, size_t max) = 0;
  virtual absl::Status Rewind() = 0;
  // The number of bytes a full read yields.
  virtual int64_t size() const = 0;
  // All of the bytes, when this stream holds them in memory (so that a
  // reader that needs them whole need not copy them); nullopt otherwise.
  virtual std::optional<std::string_view> InMemory() const {
    return std::nullopt;
  }
};

// A ByteStream over bytes in memory, which it does not own.
class StringByteStream final : public ByteStream {
 public:
  explicit StringByteStream(std::string_view bytes) : bytes_(bytes) {}
  absl::StatusOr<size_t> Read(char* buf, size_t max) override;
  absl::Status Rewind() override;
  int64_t size() const override;
  std::optional<std::string_view> InMemory() const override { return bytes_; }

 private:
  std::string_view bytes_;
  size_t offset_ = 0;
};

// A StringByteStream that owns its bytes: a model file an in-process
// engine produced, handed on as a stream like one spooled to disk.
class OwnedByteStream final : public ByteStream {
 public:
  explicit OwnedByteStream(std::string bytes)
      : bytes_(std::move(bytes)), view_(bytes_) {}
  absl::StatusOr<size_t> Read(char* buf, size_t max) override {
    return view_.Read(buf, max);
  }
  absl::Status Rewind() override { return view_.Rewind(); }
  int64_t size() const override { return view_.size(); }
  std::optional<std::string_view> InMemory() const override { return bytes_; }

 private:
  const std::string bytes_;
  StringByteStream view_;
};

// `head` (owned), then everything `tail` (not owned) yields: a message's
// small part in memory before its large part on disk, without copying the
// large part. Rewind rewinds both.
class PrefixedStream final : public ByteStream {
 public:
  PrefixedStream(std::string head, ByteStream* tail)
      : head_(std::move(head)), tail_(tail) {}
  absl::StatusOr<size_t> Read(char* buf, size_t max) override;
  absl::Status Rewind() override;
  int64_t size() const override;

 private:
  std::string head_;
  ByteStream* tail_;
  size_t offset_ = 0;
};

// Everything `first` yields, then everything `second` yields (neither
// owned; either may be null): a model file, then a training set, on the
// engine's stdin. Rewind rewinds both.
class ConcatStream final : public ByteStream {
 public:
  ConcatStream(ByteStream* first, ByteStream* second)
      : first_(first), second_(second) {}
  absl::StatusOr<size_t> Read(char* buf, size_t max) override;
  absl::Status Rewind() override;
  int64_t size() const override;

 private:
  ByteStream* first_;
  ByteStream* second_;
  bool first_done_ = false;
};

// An artifact read back in chunks, each fetched when asked for. It checks
// what it read against the digest it was opened with: the call that would
// report the end answers DATA_LOSS instead when the bytes (or their count)
// do not match. A version deleted while it is read may answer NOT_FOUND.
class ArtifactReader {
 public:
  virtual ~ArtifactReader() = default;
  // Replaces `*chunk` with the next at most kArtifactChunkBytes bytes;
  // false (and `*chunk` empty) at the verified end.
  virtual absl::StatusOr<bool> Next(std::string* chunk) = 0;
  virtual int64_t size() const = 0;
};

// Everything `in` yields, from its start (rewound first): for bytes small
// enough to hold, or a consumer that must hold them anyway.
absl::StatusOr<std::string> ReadWholeStream(ByteStream& in);

// Reads everything `reader` yields (for artifacts small enough to hold).
absl::StatusOr<std::string> ReadWholeArtifact(ArtifactReader& reader);

// A reader over bytes in memory, checked against `sha256` like any other
// (the in-memory backend and tests).
std::unique_ptr<ArtifactReader> NewStringArtifactReader(std::string bytes,
                                                        std::string sha256);

struct RegisterParams {
  ModelRow model;  // id, state, times and latest_version are assigned
  // Null when a worker is to train the model from its recipe; otherwise
  // read (possibly more than once) inside Register and not kept.
  ByteStream* artifact = nullptr;
  std::string artifact_sha256;  // raw digest of `artifact`
};

class ModelStore {
 public:
  virtual ~ModelStore() = default;

  // Stores the model and, with an artifact, version 1 ("registered") in one
  // transaction. The model starts PENDING_VALIDATION (with an artifact) or
  // TRAINING (without). NOT_FOUND for an unknown dataset, ALREADY_EXISTS
  // for a taken name, INVALID_ARGUMENT when `artifact_sha256` is not the
  // digest of `artifact`.
  virtual absl::StatusOr<ModelRow> Register(const RegisterParams& params,
                                            const std::string& actor) = 0;
  virtual absl::StatusOr<ModelRow> Get(const std::string& id) = 0;
  virtual absl::StatusOr<ModelPage> List(const std::string& dataset_id,
                                         const Page& page) = 0;
  // Newest first; `before_version` 0 starts at the newest.
  virtual absl::StatusOr<VersionPage> ListVersions(const std::string& model_id,
                                                   int64_t before_version,
                                                   int32_t page_size) = 0;
  // `version` 0 is the newest. NOT_FOUND / FAILED_PRECONDITION (no version,
  // or deleted).
  virtual absl::StatusOr<ModelVersionRow> GetVersion(
      const std::string& model_id, int64_t version) = 0;
  // Opens an artifact by raw digest for reading in chunks, each its own
  // short read (no transaction or connection is held between them).
  // NOT_FOUND if none has it; the reader answers DATA_LOSS if the stored
  // bytes do not match it.
  virtual absl::StatusOr<std::unique_ptr<ArtifactReader>> OpenArtifact(
      const std::string& sha256) = 0;
  // The whole artifact at once (tests, small artifacts).
  absl::StatusOr<std::string> ReadArtifact(const std::string& sha256);
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_MODEL_STORE_H_

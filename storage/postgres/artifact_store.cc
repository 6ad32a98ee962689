#include "storage/postgres/artifact_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "base/crypto.h"
#include "storage/hash.h"
#include "storage/postgres/sql_util.h"
#include "storage/queries_sql.h"

namespace lethe::storage {
namespace {

using internal::Bytea;
using internal::ReadBytea;

// Counts and hashes bytes as they pass, and judges them at the end.
class Digest {
 public:
  void Update(std::string_view bytes) {
    hash_.Update(absl::string_view(bytes.data(), bytes.size()));
    total_ += static_cast<int64_t>(bytes.size());
  }
  int64_t total() const { return total_; }
  // Whether the bytes seen were `size` bytes hashing to `sha256`.
  bool Matches(std::string_view sha256, int64_t size) {
    return total_ == size && hash_.Finish() == sha256;
  }

 private:
  base::Sha256Stream hash_;
  int64_t total_ = 0;
};

absl::Status Corrupt(std::string_view sha256, const char* why) {
  return absl::DataLossError(
      absl::StrCat("artifact ", ToHex(sha256), " is corrupt: ", why));
}

absl::Status NotTheirDigest() {
  return absl::InvalidArgumentError(
      "artifact bytes do not match their SHA-256 digest");
}

// The next at most kArtifactChunkBytes of `in` into `*chunk`; empty at the
// end. Short reads are filled up, so every chunk but the last is full.
absl::Status NextChunk(ByteStream& in, std::string* chunk) {
  chunk->resize(kArtifactChunkBytes);
  size_t filled = 0;
  while (filled < chunk->size()) {
    auto n = in.Read(chunk->data() + filled, chunk->size() - filled);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    filled += *n;
  }
  chunk->resize(filled);
  return absl::OkStatus();
}

struct ArtifactInfo {
  int64_t size = 0;
  std::optional<std::string> location;  // set on a filesystem store
  int64_t chunks = 0;                   // held by the database
};

absl::StatusOr<ArtifactInfo> LookUp(Txn& txn, std::string_view sha256) {
  auto res = txn.exec_params(sql::kGetArtifact, Bytea(sha256));
  if (res.empty()) {
    return absl::NotFoundError(absl::StrCat("no artifact ", ToHex(sha256)));
  }
  ArtifactInfo info;
  info.size = res[0][0].as<int64_t>();
  if (!res[0][1].is_null()) info.location = res[0][1].c_str();
  info.chunks = res[0][2].as<int64_t>();
  return info;
}

absl::StatusOr<std::string> ReadChunk(Txn& txn, std::string_view sha256,
                                      int64_t seq) {
  auto res = txn.exec_params(sql::kGetArtifactChunk, Bytea(sha256), seq);
  if (res.empty()) {
    return absl::NotFoundError(absl::StrCat("artifact ", ToHex(sha256),
                                            " was deleted while it was read"));
  }
  return ReadBytea(res[0][0]);
}

// Streams `bytes` into chunk rows while hashing them; writes nothing when
// the digest was stored already.
absl::Status PutChunks(Txn& txn, std::string_view sha256, ByteStream& bytes) {
  if (sha256.size() != base::kSha256Bytes) return NotTheirDigest();
  const bool fresh =
      !txn.exec_params(sql::kInsertArtifact, Bytea(sha256), bytes.size())
           .empty();
  if (auto st = bytes.Rewind(); !st.ok()) return st;
  Digest digest;
  std::string chunk;
  for (int64_t seq = 0;; ++seq) {
    if (auto st = NextChunk(bytes, &chunk); !st.ok()) return st;
    if (chunk.empty()) break;
    digest.Update(chunk);
    if (fresh) {
      txn.exec_params(sql::kInsertArtifactChunk, Bytea(sha256), seq,
                      Bytea(chunk));
    }
  }
  if (!digest.Matches(sha256, bytes.size())) return NotTheirDigest();
  return absl::OkStatus();
}

// Reads the chunks the database holds, inside `txn`.
absl::StatusOr<std::string> GetChunks(Txn& txn, std::string_view sha256,
                                      const ArtifactInfo& info) {
  std::string out;
  out.reserve(static_cast<size_t>(info.size));
  Digest digest;
  for (int64_t seq = 0; seq < info.chunks; ++seq) {
    auto chunk = ReadChunk(txn, sha256, seq);
    if (!chunk.ok()) return chunk.status();
    digest.Update(*chunk);
    out += *chunk;
  }
  if (!digest.Matches(sha256, info.size)) {
    return Corrupt(sha256, "its chunks do not hash to its digest");
  }
  return out;
}

// Checks what a subclass fetches against the digest and size it expects.
class VerifyingReader : public ArtifactReader {
 public:
  VerifyingReader(std::string sha256, int64_t size)
      : sha256_(std::move(sha256)), size_(size) {}

  absl::StatusOr<bool> Next(std::string* chunk) override {
    chunk->clear();
    if (done_) return false;
    auto more = Fetch(chunk);
    if (!more.ok()) return more.status();
    if (*more) {
      digest_.Update(*chunk);
      if (digest_.total() > size_) {
        return Corrupt(sha256_, "it is longer than its recorded size");
      }
      return true;
    }
    done_ = true;
    if (!digest_.Matches(sha256_, size_)) {
      return Corrupt(sha256_, "its bytes do not hash to its digest");
    }
    return false;
  }

  int64_t size() const override { return size_; }

 protected:
  // The next piece into `*chunk`; false at the end.
  virtual absl::StatusOr<bool> Fetch(std::string* chunk) = 0;
  const std::string& sha256() const { return sha256_; }

 private:
  const std::string sha256_;
  const int64_t size_;
  Digest digest_;
  bool done_ = false;
};

class ChunkReader final : public VerifyingReader {
 public:
  ChunkReader(Database* db, std::string sha256, const ArtifactInfo& info)
      : VerifyingReader(std::move(sha256), info.size),
        db_(db),
        chunks_(info.chunks) {}

 protected:
  absl::StatusOr<bool> Fetch(std::string* chunk) override {
    if (next_ >= chunks_) return false;
    auto bytes = db_->TransactValue<std::string>(
        [&](Txn& txn) { return ReadChunk(txn, sha256(), next_); });
    if (!bytes.ok()) return bytes.status();
    *chunk = std::move(*bytes);
    ++next_;
    return true;
  }

 private:
  Database* db_;
  const int64_t chunks_;
  int64_t next_ = 0;
};

class FileReader final : public VerifyingReader {
 public:
  FileReader(std::string sha256, int64_t size, std::ifstream in)
      : VerifyingReader(std::move(sha256), size), in_(std::move(in)) {}

 protected:
  absl::StatusOr<bool> Fetch(std::string* chunk) override {
    chunk->resize(kArtifactChunkBytes);
    in_.read(chunk->data(), static_cast<std::streamsize>(chunk->size()));
    chunk->resize(static_cast<size_t>(in_.gcount()));
    if (in_.bad()) return Corrupt(sha256(), "reading its file failed");
    return !chunk->empty();
  }

 private:
  std::ifstream in_;
};

absl::StatusOr<ArtifactInfo> LookUpIn(Database& db, std::string_view sha256) {
  return db.TransactValue<ArtifactInfo>(
      [&](Txn& txn) { return LookUp(txn, sha256); });
}

absl::Status OnFilesystem(std::string_view sha256, const std::string& where) {
  return absl::FailedPreconditionError(absl::StrCat(
      "artifact ", ToHex(sha256), " is kept on a filesystem store (", where,
      "); configure --artifact-dir"));
}

class PostgresArtifactStore final : public ArtifactStore {
 public:
  absl::Status Put(Txn& txn, std::string_view sha256,
                   ByteStream& bytes) override {
    return PutChunks(txn, sha256, bytes);
  }

  absl::StatusOr<std::string> Get(Txn& txn, std::string_view sha256) override {
    auto info = LookUp(txn, sha256);
    if (!info.ok()) return info.status();
    if (info->location) return OnFilesystem(sha256, *info->location);
    return GetChunks(txn, sha256, *info);
  }

  absl::StatusOr<std::unique_ptr<ArtifactReader>> Open(
      Database& db, std::string_view sha256) override {
    auto info = LookUpIn(db, sha256);
    if (!info.ok()) return info.status();
    if (info->location) return OnFilesystem(sha256, *info->location);
    return std::make_unique<ChunkReader>(&db, std::string(sha256), *info);
  }

  absl::Status Delete(Txn& txn, std::string_view sha256) override {
    txn.exec_params(sql::kDeleteArtifact, Bytea(sha256));  // chunks cascade
    return absl::OkStatus();
  }
};

class FilesystemArtifactStore final : public ArtifactStore {
 public:
  explicit FilesystemArtifactStore(std::string root) : root_(std::move(root)) {}

  absl::Status Put(Txn& txn, std::string_view sha256,
                   ByteStream& bytes) override {
    if (sha256.size() != base::kSha256Bytes) return NotTheirDigest();
    const std::filesystem::path path = PathOf(sha256);
    if (auto st = WriteAtomically(path, sha256, bytes); !st.ok()) return st;
    txn.exec_params(sql::kInsertArtifactLocation, Bytea(sha256), bytes.size(),
                    RelativeName(sha256));
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Get(Txn& txn, std::string_view sha256) override {
    auto info = LookUp(txn, sha256);
    if (!info.ok()) return info.status();
    if (!info->location) return GetChunks(txn, sha256, *info);
    auto reader = OpenFile(sha256, info->size);
    if (!reader.ok()) return reader.status();
    return ReadWholeArtifact(**reader);
  }

  absl::StatusOr<std::unique_ptr<ArtifactReader>> Open(
      Database& db, std::string_view sha256) override {
    auto info = LookUpIn(db, sha256);
    if (!info.ok()) return info.status();
    if (!info->location) {
      return std::make_unique<ChunkReader>(&db, std::string(sha256), *info);
    }
    return OpenFile(sha256, info->size);
  }

  absl::Status Delete(Txn& txn, std::string_view sha256) override {
    txn.exec_params(sql::kDeleteArtifact, Bytea(sha256));
    std::error_code ec;
    std::filesystem::remove(PathOf(sha256), ec);  // absent is fine
    return absl::OkStatus();
  }

 private:
  std::string RelativeName(std::string_view sha256) const {
    const std::string hex = ToHex(sha256);
    return absl::StrCat(hex.substr(0, 2), "/", hex);
  }
  std::filesystem::path PathOf(std::string_view sha256) const {
    return std::filesystem::path(root_) / RelativeName(sha256);
  }

  absl::StatusOr<std::unique_ptr<ArtifactReader>> OpenFile(
      std::string_view sha256, int64_t size) const {
    std::ifstream in(PathOf(sha256), std::ios::binary);
    if (!in) {
      return absl::DataLossError(absl::StrCat(
          "artifact file ", PathOf(sha256).string(), " is missing"));
    }
    return std::make_unique<FileReader>(std::string(sha256), size,
                                        std::move(in));
  }

  // Writes `bytes` to a temporary file beside `path` while hashing them,
  // and renames it into place only when they match `sha256`.
  static absl::Status WriteAtomically(const std::filesystem::path& path,
                                      std::string_view sha256,
                                      ByteStream& bytes) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) {
      return absl::InternalError(absl::StrCat(
          "cannot create ", path.parent_path().string(), ": ", ec.message()));
    }
    const std::string tmp = absl::StrCat(path.string(), ".tmp.", getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return absl::InternalError(absl::StrCat("cannot write ", tmp));
    absl::Status st = WriteAll(fd, sha256, bytes);
    if (st.ok() && ::fsync(fd) != 0) {
      st = absl::InternalError(absl::StrCat("cannot sync ", tmp));
    }
    ::close(fd);
    if (st.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
      st = absl::InternalError(absl::StrCat("cannot store ", path.string()));
    }
    if (!st.ok()) ::unlink(tmp.c_str());
    return st;
  }

  static absl::Status WriteAll(int fd, std::string_view sha256,
                               ByteStream& bytes) {
    if (auto st = bytes.Rewind(); !st.ok()) return st;
    Digest digest;
    std::string chunk;
    for (;;) {
      if (auto st = NextChunk(bytes, &chunk); !st.ok()) return st;
      if (chunk.empty()) break;
      digest.Update(chunk);
      size_t done = 0;
      while (done < chunk.size()) {
        const ssize_t n = ::write(fd, chunk.data() + done, chunk.size() - done);
        if (n <= 0) return absl::InternalError("short write to an artifact");
        done += static_cast<size_t>(n);
      }
    }
    if (!digest.Matches(sha256, bytes.size())) return NotTheirDigest();
    return absl::OkStatus();
  }

  const std::string root_;
};

}  // namespace

absl::Status ArtifactStore::PutBytes(Txn& txn, std::string_view sha256,
                                     std::string_view bytes) {
  StringByteStream in(bytes);
  return Put(txn, sha256, in);
}

std::unique_ptr<ArtifactStore> NewPostgresArtifactStore() {
  return std::make_unique<PostgresArtifactStore>();
}

std::unique_ptr<ArtifactStore> NewFilesystemArtifactStore(std::string root) {
  return std::make_unique<FilesystemArtifactStore>(std::move(root));
}

}  // namespace lethe::storage

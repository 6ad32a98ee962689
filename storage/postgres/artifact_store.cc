#include "storage/postgres/artifact_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "storage/hash.h"
#include "storage/postgres/sql_util.h"
#include "storage/queries_sql.h"

namespace lethe::storage {
namespace {

using internal::Bytea;
using internal::ReadBytea;

absl::Status CheckDigest(std::string_view sha256, std::string_view bytes) {
  if (sha256.size() != 32 || Sha256(bytes) != sha256) {
    return absl::InvalidArgumentError(
        "artifact bytes do not match their SHA-256 digest");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Verified(std::string_view sha256,
                                     std::string bytes) {
  if (Sha256(bytes) != sha256) {
    return absl::DataLossError(absl::StrCat(
        "artifact ", ToHex(sha256), " is corrupt: its digest does not match"));
  }
  return bytes;
}

class PostgresArtifactStore final : public ArtifactStore {
 public:
  absl::Status Put(Txn& txn, std::string_view sha256,
                   std::string_view bytes) override {
    if (auto st = CheckDigest(sha256, bytes); !st.ok()) return st;
    txn.exec_params(sql::kInsertArtifact, Bytea(sha256),
                    static_cast<int64_t>(bytes.size()), Bytea(bytes));
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Get(Txn& txn, std::string_view sha256) override {
    auto res = txn.exec_params(sql::kGetArtifact, Bytea(sha256));
    if (res.empty()) {
      return absl::NotFoundError(absl::StrCat("no artifact ", ToHex(sha256)));
    }
    if (res[0][0].is_null()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "artifact ", ToHex(sha256), " is kept on a filesystem store (",
          res[0][1].c_str(), "); configure --artifact-dir"));
    }
    return Verified(sha256, ReadBytea(res[0][0]));
  }

  absl::Status Delete(Txn& txn, std::string_view sha256) override {
    txn.exec_params(sql::kDeleteArtifact, Bytea(sha256));
    return absl::OkStatus();
  }
};

class FilesystemArtifactStore final : public ArtifactStore {
 public:
  explicit FilesystemArtifactStore(std::string root) : root_(std::move(root)) {}

  absl::Status Put(Txn& txn, std::string_view sha256,
                   std::string_view bytes) override {
    if (auto st = CheckDigest(sha256, bytes); !st.ok()) return st;
    const std::filesystem::path path = PathOf(sha256);
    if (auto st = WriteAtomically(path, bytes); !st.ok()) return st;
    txn.exec_params(sql::kInsertArtifactLocation, Bytea(sha256),
                    static_cast<int64_t>(bytes.size()), RelativeName(sha256));
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Get(Txn& txn, std::string_view sha256) override {
    auto res = txn.exec_params(sql::kGetArtifact, Bytea(sha256));
    if (res.empty()) {
      return absl::NotFoundError(absl::StrCat("no artifact ", ToHex(sha256)));
    }
    if (!res[0][0].is_null()) return Verified(sha256, ReadBytea(res[0][0]));
    std::ifstream in(PathOf(sha256), std::ios::binary);
    if (!in) {
      return absl::DataLossError(absl::StrCat(
          "artifact file ", PathOf(sha256).string(), " is missing"));
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    return Verified(sha256, std::move(buf).str());
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

  static absl::Status WriteAtomically(const std::filesystem::path& path,
                                      std::string_view bytes) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) {
      return absl::InternalError(absl::StrCat(
          "cannot create ", path.parent_path().string(), ": ", ec.message()));
    }
    const std::string tmp = absl::StrCat(path.string(), ".tmp.", getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return absl::InternalError(absl::StrCat("cannot write ", tmp));
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n <= 0) {
        ::close(fd);
        return absl::InternalError(absl::StrCat("short write to ", tmp));
      }
      done += static_cast<size_t>(n);
    }
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!synced || std::rename(tmp.c_str(), path.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot store ", path.string()));
    }
    return absl::OkStatus();
  }

  const std::string root_;
};

}  // namespace

std::unique_ptr<ArtifactStore> NewPostgresArtifactStore() {
  return std::make_unique<PostgresArtifactStore>();
}

std::unique_ptr<ArtifactStore> NewFilesystemArtifactStore(std::string root) {
  return std::make_unique<FilesystemArtifactStore>(std::move(root));
}

}  // namespace lethe::storage

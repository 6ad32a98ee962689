// ArtifactStore: model files, content-addressed by SHA-256, moved in
// chunks of kArtifactChunkBytes so that no caller holds a whole file.
//
// Contract: Put is idempotent (the same bytes under the same digest may be
// written any number of times) and runs inside the caller's transaction, so
// that publishing a model version and its artifact is one commit. The
// PostgreSQL store keeps the bytes as rows of `artifact_chunks`; the
// filesystem store writes the file first (atomically, by rename) and
// records its location in the transaction, so a rolled-back transaction
// leaves at most an unreferenced file for garbage collection. Every read
// verifies the digest of what it read (DATA_LOSS on mismatch).
// Implementations are thread-safe.
#ifndef LETHE_STORAGE_POSTGRES_ARTIFACT_STORE_H_
#define LETHE_STORAGE_POSTGRES_ARTIFACT_STORE_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "storage/model_store.h"
#include "storage/postgres/database.h"

namespace lethe::storage {

class ArtifactStore {
 public:
  virtual ~ArtifactStore() = default;
  // Reads `bytes` from the start and stores them under `sha256`, their raw
  // 32-byte digest: INVALID_ARGUMENT when they do not hash to it (the caller
  // returns it, which rolls the transaction back). A digest stored already
  // keeps its bytes; the new ones are still read and checked.
  virtual absl::Status Put(Txn& txn, std::string_view sha256,
                           ByteStream& bytes) = 0;
  // Put for bytes in memory.
  absl::Status PutBytes(Txn& txn, std::string_view sha256,
                        std::string_view bytes);
  // The whole artifact, read inside `txn`. NOT_FOUND if no artifact has
  // that digest.
  virtual absl::StatusOr<std::string> Get(Txn& txn,
                                          std::string_view sha256) = 0;
  // A reader that fetches one chunk at a time, each in a short transaction
  // of its own on `db` (which must outlive it). NOT_FOUND as Get.
  virtual absl::StatusOr<std::unique_ptr<ArtifactReader>> Open(
      Database& db, std::string_view sha256) = 0;
  // Removes the artifact's bytes and row; OK if already absent.
  virtual absl::Status Delete(Txn& txn, std::string_view sha256) = 0;
};

std::unique_ptr<ArtifactStore> NewPostgresArtifactStore();
// Files live under `root/<2 hex>/<64 hex>`; `root` must be shared by every
// server and worker (a shared volume).
std::unique_ptr<ArtifactStore> NewFilesystemArtifactStore(std::string root);

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_POSTGRES_ARTIFACT_STORE_H_

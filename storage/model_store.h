// ModelStore: registered models, their versions and artifacts.
// Thread-safe; artifacts go through the injected ArtifactStore.
#ifndef LETHE_STORAGE_MODEL_STORE_H_
#define LETHE_STORAGE_MODEL_STORE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/artifact_store.h"
#include "storage/database.h"
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

struct RegisterParams {
  ModelRow model;  // id, state, times and latest_version are assigned
  // Empty when a worker is to train the model from its recipe.
  std::string artifact;
  std::string artifact_sha256;  // raw digest of `artifact`
};

class ModelStore {
 public:
  ModelStore(Database* db, ArtifactStore* artifacts)
      : db_(db), artifacts_(artifacts) {}

  // Stores the model and, with an artifact, version 1 ("registered") in one
  // transaction. The model starts PENDING_VALIDATION (with an artifact) or
  // TRAINING (without). NOT_FOUND for an unknown dataset, ALREADY_EXISTS
  // for a taken name.
  absl::StatusOr<ModelRow> Register(const RegisterParams& params,
                                    const std::string& actor);
  absl::StatusOr<ModelRow> Get(const std::string& id);
  absl::StatusOr<ModelPage> List(const std::string& dataset_id,
                                 const Page& page);
  // Newest first; `before_version` 0 starts at the newest.
  absl::StatusOr<VersionPage> ListVersions(const std::string& model_id,
                                           int64_t before_version,
                                           int32_t page_size);
  // `version` 0 is the newest. NOT_FOUND / FAILED_PRECONDITION (no version,
  // or deleted).
  absl::StatusOr<ModelVersionRow> GetVersion(const std::string& model_id,
                                             int64_t version);
  absl::StatusOr<std::string> ReadArtifact(const std::string& sha256);

 private:
  Database* db_;              // not owned
  ArtifactStore* artifacts_;  // not owned
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_MODEL_STORE_H_

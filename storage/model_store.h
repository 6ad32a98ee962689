// ModelStore: registered models, their versions and artifacts.
// Thread-safe. Artifacts are content-addressed by SHA-256 (the PostgreSQL
// store keeps them in a table or on a shared volume).
#ifndef LETHE_STORAGE_MODEL_STORE_H_
#define LETHE_STORAGE_MODEL_STORE_H_

#include <optional>
#include <string>
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

struct RegisterParams {
  ModelRow model;  // id, state, times and latest_version are assigned
  // Empty when a worker is to train the model from its recipe.
  std::string artifact;
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
  // The bytes of an artifact by raw digest: NOT_FOUND if none has it,
  // DATA_LOSS if the stored bytes do not match it.
  virtual absl::StatusOr<std::string> ReadArtifact(
      const std::string& sha256) = 0;
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_MODEL_STORE_H_

// Plain rows that storage/ hands to the layers above. Free of gRPC and
// protobuf: the server maps them to lethe.v1 messages. Times are
// microseconds since the Unix epoch; ids are lower-case UUID strings;
// hashes and keys are raw bytes in std::string.
#ifndef LETHE_STORAGE_TYPES_H_
#define LETHE_STORAGE_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lethe::storage {

enum class Role { kSubmitter, kOperator, kAuditor, kAdmin };
const char* RoleName(Role role);
std::optional<Role> ParseRole(std::string_view name);

struct ApiKeyRow {
  std::string key_id;
  std::string secret_sha256;  // 32 bytes
  Role role = Role::kSubmitter;
  std::string description;
  bool revoked = false;
  // A submitter key's datasets (lower-case UUIDs, sorted): its requests
  // reach only models of these datasets. Empty: every dataset.
  std::vector<std::string> dataset_ids;
};

struct DatasetRow {
  std::string id;
  std::string name;
  std::string description;
  std::vector<int64_t> feature_shape;
  std::string feature_type;  // "uint8" | "float32"
  int32_t num_classes = 0;
  int64_t train_records = 0;
  int64_t test_records = 0;
  int64_t subjects = 0;
  int64_t created_us = 0;
};

// One record as uploaded, subject already keyed.
struct RecordRow {
  std::string subject_key;  // 32 bytes
  int32_t label = 0;
  bool test = false;
  std::string features;  // raw bytes of the dataset's feature type
};

struct ModelRow {
  std::string id;
  std::string name;
  std::string description;
  std::string dataset_id;
  std::string architecture_json;
  std::string recipe_json;
  std::string policy_json;
  std::string state;  // PENDING_VALIDATION | TRAINING | READY | INVALID
  std::string state_reason;
  int64_t latest_version = 0;
  int64_t created_us = 0;
  int64_t updated_us = 0;
};

struct ModelVersionRow {
  std::string model_id;
  int64_t version = 0;
  std::string artifact_sha256;  // 32 bytes
  int64_t size_bytes = 0;
  int64_t parent_version = 0;
  std::string produced_by;
  std::vector<std::string> erasure_ids;
  int64_t created_us = 0;
  int64_t deleted_us = 0;  // 0 while the artifact exists
  std::string report_json;
  int64_t records_removed = 0;
};

struct TaskRow {
  std::string model_id;
  std::string state;  // QUEUED | LEASED | DONE | DEAD | CANCELLED
  int32_t attempts = 0;
  std::string last_error;
  int64_t result_version = 0;
  int64_t updated_us = 0;
};

struct ErasureRow {
  std::string id;
  std::string state;
  std::string state_reason;
  std::string subject_commitment;  // 32 bytes
  std::string legal_ground;  // enum name without prefix, e.g. "CCPA_1798_105"
  std::string legal_reference;
  std::vector<std::string> scope_model_ids;
  std::vector<TaskRow> tasks;
  std::string idempotency_key;
  int64_t created_us = 0;
  int64_t updated_us = 0;
  int64_t completed_us = 0;
  std::string client_key_id;  // the API key that submitted it
};

// Keyset pagination over (created_us, id), newest first.
struct PageCursor {
  int64_t created_us = 0;
  std::string id;
};

struct Page {
  int32_t size = 50;
  std::optional<PageCursor> after;  // resume strictly after this row
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_TYPES_H_

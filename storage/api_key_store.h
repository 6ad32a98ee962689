// ApiKeyStore: API keys, stored only as SHA-256 of their secret.
//
// A key as handed to a client reads `lethe_<key id>_<secret>`: the key id
// (16 hex) finds the row, the secret (64 hex, 256 bits) is checked against
// its stored hash in constant time.
#ifndef LETHE_STORAGE_API_KEY_STORE_H_
#define LETHE_STORAGE_API_KEY_STORE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/types.h"

namespace lethe::storage {

struct NewApiKey {
  std::string key_id;
  std::string token;  // the full `lethe_<id>_<secret>`; shown once
  Role role;
};

// What a new key may do. `dataset_ids` scopes a submitter key to models of
// those datasets (issue 17, item 5); empty: every dataset.
struct ApiKeySpec {
  Role role = Role::kSubmitter;
  std::string description;
  std::vector<std::string> dataset_ids;
};

struct ParsedToken {
  std::string key_id;
  std::string secret;
};

// The datasets of `spec` lower-cased, sorted and without repeats, as the
// stores keep them. INVALID_ARGUMENT for datasets on a key that is not a
// submitter's, or an id that is not a UUID.
absl::StatusOr<std::vector<std::string>> KeyDatasets(const ApiKeySpec& spec);

// INVALID_ARGUMENT unless `token` has the documented shape.
absl::StatusOr<ParsedToken> ParseApiToken(std::string_view token);

class ApiKeyStore {
 public:
  virtual ~ApiKeyStore() = default;

  // INVALID_ARGUMENT for datasets on a key that is not a submitter's or an
  // id that is not a UUID; NOT_FOUND naming a dataset that does not exist.
  virtual absl::StatusOr<NewApiKey> Create(const ApiKeySpec& spec,
                                           const std::string& actor) = 0;
  // NOT_FOUND if absent.
  virtual absl::StatusOr<ApiKeyRow> Lookup(const std::string& key_id) = 0;
  // NOT_FOUND if absent; idempotent.
  virtual absl::Status Revoke(const std::string& key_id,
                              const std::string& actor) = 0;
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_API_KEY_STORE_H_

// Mapping between storage rows and lethe.v1 messages, page tokens and
// enum names. Pure functions.
#ifndef LETHE_SERVER_CONVERT_H_
#define LETHE_SERVER_CONVERT_H_

#include <optional>
#include <string>
#include <vector>

#include <google/protobuf/timestamp.pb.h>

#include "absl/status/statusor.h"
#include "lethe/v1/dataset.pb.h"
#include "lethe/v1/erasure.pb.h"
#include "lethe/v1/model.pb.h"
#include "storage/types.h"

namespace lethe::server {

void ToProto(const storage::ErasureRow& row, v1::Erasure* out);
void ToProto(const storage::DatasetRow& row, v1::Dataset* out);
// INTERNAL if the stored JSON does not parse (a corrupt row).
absl::Status ToProto(const storage::ModelRow& row, v1::Model* out);
void ToProto(const storage::ModelVersionRow& row, v1::ModelVersion* out);

void SetTimestamp(int64_t micros, google::protobuf::Timestamp* out);
int64_t Micros(const google::protobuf::Timestamp& ts);

// Storage stores enum values by their name without the type prefix:
// ERASURE_STATE_QUEUED <-> "QUEUED".
std::string LegalGroundName(v1::LegalGround g);
std::string ErasureStateName(v1::ErasureState s);

// Page sizes: 0 -> 50; otherwise 1..1000 (INVALID_ARGUMENT).
absl::StatusOr<int32_t> PageSize(int32_t requested);
// A token binds the cursor to the filters it was issued for.
std::string EncodePageToken(const storage::PageCursor& cursor,
                            const std::string& filter_fingerprint);
absl::StatusOr<std::optional<storage::PageCursor>> DecodePageToken(
    const std::string& token, const std::string& filter_fingerprint);

// The shared frame of every page token: web-safe base64 of '|'-separated
// fields, the first naming the token's format. PageTokenFields returns the
// fields of `token` if it has that frame, `version` first and `fields` in
// all; nullopt for an empty token (the first page); otherwise
// InvalidPageToken(), the one error for every misused token.
absl::StatusOr<std::optional<std::vector<std::string>>> PageTokenFields(
    const std::string& token, const std::string& version, size_t fields);
absl::Status InvalidPageToken();

}  // namespace lethe::server

#endif  // LETHE_SERVER_CONVERT_H_

#include "storage/types.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "storage/api_key_store.h"
#include "storage/dataset_store.h"
#include "storage/erasure_store.h"
#include "storage/hash.h"

namespace lethe::storage {

const char* RoleName(Role role) {
  switch (role) {
    case Role::kSubmitter:
      return "submitter";
    case Role::kOperator:
      return "operator";
    case Role::kAuditor:
      return "auditor";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::optional<Role> ParseRole(std::string_view name) {
  for (Role r :
       {Role::kSubmitter, Role::kOperator, Role::kAuditor, Role::kAdmin}) {
    if (name == RoleName(r)) return r;
  }
  return std::nullopt;
}

absl::StatusOr<ParsedToken> ParseApiToken(std::string_view token) {
  // lethe_ + 16 hex + _ + 64 hex
  constexpr size_t kLength = 6 + 16 + 1 + 64;
  if (token.size() != kLength || token.substr(0, 6) != "lethe_" ||
      token[22] != '_' || !FromHex(token.substr(6, 16)) ||
      !FromHex(token.substr(23))) {
    return absl::InvalidArgumentError(
        "malformed API key: expected lethe_<16 hex>_<64 hex>");
  }
  return ParsedToken{std::string(token.substr(6, 16)),
                     std::string(token.substr(23))};
}

absl::StatusOr<std::vector<std::string>> KeyDatasets(const ApiKeySpec& spec) {
  if (!spec.dataset_ids.empty() && spec.role != Role::kSubmitter) {
    return absl::InvalidArgumentError(
        "datasets scope submitter keys only: operators, auditors and admins "
        "work on every dataset");
  }
  std::vector<std::string> out;
  for (const std::string& id : spec.dataset_ids) {
    std::string lower = absl::AsciiStrToLower(id);
    bool uuid = lower.size() == 36;
    for (size_t i = 0; uuid && i < lower.size(); ++i) {
      const char c = lower[i];
      uuid = (i == 8 || i == 13 || i == 18 || i == 23)
                 ? c == '-'
                 : (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    }
    if (!uuid) {
      return absl::InvalidArgumentError(
          absl::StrCat("datasets: '", id, "' is not a dataset id (a UUID)"));
    }
    out.push_back(std::move(lower));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool IsTerminalErasureState(std::string_view state) {
  return state == "COMPLETED" || state == "NOTHING_TO_ERASE" ||
         state == "FAILED" || state == "CANCELLED";
}

namespace {

// One batch: the whole vector.
class VectorBatches : public RecordBatches {
 public:
  explicit VectorBatches(const std::vector<RecordRow>& records)
      : records_(records) {}
  absl::StatusOr<bool> Next(std::vector<RecordRow>* batch) override {
    if (done_) return false;
    done_ = true;
    *batch = records_;
    return !batch->empty();
  }

 private:
  const std::vector<RecordRow>& records_;
  bool done_ = false;
};

}  // namespace

absl::StatusOr<AddRecordsResult> DatasetStore::AddRecords(
    const std::string& dataset_id, const std::vector<RecordRow>& records,
    const std::string& actor) {
  VectorBatches batches(records);
  return AddRecordBatches(dataset_id, batches, actor);
}

}  // namespace lethe::storage

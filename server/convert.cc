#include "server/convert.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "storage/hash.h"
#include "validate/validate.h"

namespace lethe::server {
namespace {

template <typename Enum>
std::string StripPrefix(const std::string& full, const std::string& prefix) {
  return full.rfind(prefix, 0) == 0 ? full.substr(prefix.size()) : full;
}

v1::TaskState TaskStateFromName(const std::string& name) {
  v1::TaskState s = v1::TASK_STATE_UNSPECIFIED;
  v1::TaskState_Parse("TASK_STATE_" + name, &s);
  return s;
}

absl::Status FromJson(const std::string& json, google::protobuf::Message* out) {
  auto st = google::protobuf::util::JsonStringToMessage(json, out);
  if (!st.ok()) {
    return absl::InternalError(
        absl::StrCat("stored model JSON does not parse: ", st.ToString()));
  }
  return absl::OkStatus();
}

std::string Short(const std::string& fingerprint) {
  return storage::ToHex(storage::Sha256(fingerprint)).substr(0, 16);
}

}  // namespace

void SetTimestamp(int64_t micros, google::protobuf::Timestamp* out) {
  out->set_seconds(micros / 1000000);
  out->set_nanos(static_cast<int32_t>(micros % 1000000) * 1000);
}

int64_t Micros(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1000000 + ts.nanos() / 1000;
}

std::string LegalGroundName(v1::LegalGround g) {
  return StripPrefix<v1::LegalGround>(v1::LegalGround_Name(g), "LEGAL_GROUND_");
}

std::string ErasureStateName(v1::ErasureState s) {
  return StripPrefix<v1::ErasureState>(v1::ErasureState_Name(s),
                                       "ERASURE_STATE_");
}

void ToProto(const storage::ErasureRow& row, v1::Erasure* out) {
  out->set_id(row.id);
  v1::ErasureState state = v1::ERASURE_STATE_UNSPECIFIED;
  v1::ErasureState_Parse("ERASURE_STATE_" + row.state, &state);
  out->set_state(state);
  out->set_state_reason(row.state_reason);
  out->set_subject_commitment(row.subject_commitment);
  v1::LegalGround ground = v1::LEGAL_GROUND_UNSPECIFIED;
  v1::LegalGround_Parse("LEGAL_GROUND_" + row.legal_ground, &ground);
  out->set_legal_ground(ground);
  out->set_legal_reference(row.legal_reference);
  for (const auto& id : row.scope_model_ids) out->add_scope_model_ids(id);
  for (const auto& t : row.tasks) {
    auto* task = out->add_tasks();
    task->set_model_id(t.model_id);
    task->set_state(TaskStateFromName(t.state));
    task->set_attempts(t.attempts);
    task->set_last_error(t.last_error);
    task->set_result_version(t.result_version);
    SetTimestamp(t.updated_us, task->mutable_update_time());
  }
  out->set_idempotency_key(row.idempotency_key);
  SetTimestamp(row.created_us, out->mutable_create_time());
  SetTimestamp(row.updated_us, out->mutable_update_time());
  if (row.completed_us != 0) {
    SetTimestamp(row.completed_us, out->mutable_complete_time());
  }
}

void ToProto(const storage::DatasetRow& row, v1::Dataset* out) {
  out->set_id(row.id);
  out->set_name(row.name);
  out->set_description(row.description);
  for (int64_t d : row.feature_shape) out->add_feature_shape(d);
  out->set_feature_type(row.feature_type == "uint8" ? v1::FEATURE_TYPE_UINT8
                                                    : v1::FEATURE_TYPE_FLOAT32);
  out->set_num_classes(row.num_classes);
  out->set_train_records(row.train_records);
  out->set_test_records(row.test_records);
  out->set_subjects(row.subjects);
  SetTimestamp(row.created_us, out->mutable_create_time());
}

absl::Status ToProto(const storage::ModelRow& row, v1::Model* out) {
  out->set_id(row.id);
  out->set_name(row.name);
  out->set_description(row.description);
  out->set_dataset_id(row.dataset_id);
  if (auto st = FromJson(row.architecture_json, out->mutable_architecture());
      !st.ok()) {
    return st;
  }
  if (auto st = FromJson(row.recipe_json, out->mutable_recipe()); !st.ok()) {
    return st;
  }
  if (auto st = FromJson(row.policy_json, out->mutable_policy()); !st.ok()) {
    return st;
  }
  v1::ModelState state = v1::MODEL_STATE_UNSPECIFIED;
  v1::ModelState_Parse("MODEL_STATE_" + row.state, &state);
  out->set_state(state);
  out->set_state_reason(row.state_reason);
  out->set_latest_version(row.latest_version);
  SetTimestamp(row.created_us, out->mutable_create_time());
  SetTimestamp(row.updated_us, out->mutable_update_time());
  return absl::OkStatus();
}

void ToProto(const storage::ModelVersionRow& row, v1::ModelVersion* out) {
  out->set_model_id(row.model_id);
  out->set_version(row.version);
  out->set_artifact_sha256(storage::ToHex(row.artifact_sha256));
  out->set_size_bytes(row.size_bytes);
  out->set_parent_version(row.parent_version);
  out->set_produced_by(row.produced_by);
  for (const auto& id : row.erasure_ids) out->add_erasure_ids(id);
  SetTimestamp(row.created_us, out->mutable_create_time());
  if (row.deleted_us != 0) {
    SetTimestamp(row.deleted_us, out->mutable_delete_time());
  }
  out->set_report_json(row.report_json);
  out->set_records_removed(row.records_removed);
}

absl::StatusOr<int32_t> PageSize(int32_t requested) {
  if (requested == 0) return 50;
  if (requested < 0 || requested > 1000) {
    return absl::InvalidArgumentError("page_size must be in 1..1000");
  }
  return requested;
}

std::string EncodePageToken(const storage::PageCursor& cursor,
                            const std::string& filter_fingerprint) {
  return absl::WebSafeBase64Escape(absl::StrCat("v1|", cursor.created_us, "|",
                                                cursor.id, "|",
                                                Short(filter_fingerprint)));
}

absl::Status InvalidPageToken() {
  return absl::InvalidArgumentError(
      "page_token is not valid for this call: pass back next_page_token "
      "unchanged, with the same filters");
}

absl::StatusOr<std::optional<std::vector<std::string>>> PageTokenFields(
    const std::string& token, const std::string& version, size_t fields) {
  if (token.empty()) return std::optional<std::vector<std::string>>();
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return InvalidPageToken();
  std::vector<std::string> parts = absl::StrSplit(raw, '|');
  if (parts.size() != fields || parts[0] != version) return InvalidPageToken();
  return std::optional<std::vector<std::string>>(std::move(parts));
}

absl::StatusOr<std::optional<storage::PageCursor>> DecodePageToken(
    const std::string& token, const std::string& filter_fingerprint) {
  auto parts = PageTokenFields(token, "v1", 4);
  if (!parts.ok()) return parts.status();
  if (!parts->has_value()) return std::optional<storage::PageCursor>();
  const std::vector<std::string>& f = **parts;
  storage::PageCursor cursor;
  if (!absl::SimpleAtoi(f[1], &cursor.created_us) || !IsUuid(f[2]) ||
      f[3] != Short(filter_fingerprint)) {
    return InvalidPageToken();
  }
  cursor.id = f[2];
  return std::optional<storage::PageCursor>(cursor);
}

}  // namespace lethe::server

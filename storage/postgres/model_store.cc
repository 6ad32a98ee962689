#include <map>

#include "absl/strings/str_cat.h"
#include "storage/hash.h"
#include "storage/postgres/sql_util.h"
#include "storage/postgres/stores.h"
#include "storage/queries_sql.h"

namespace lethe::storage {
namespace {

using internal::Bytea;
using internal::ReadBytea;
using internal::ReadInt64;

// A row of queries/get_model.sql or list_models.sql.
ModelRow ReadModel(const pqxx::row& r) {
  ModelRow m;
  m.id = r[0].c_str();
  m.name = r[1].c_str();
  m.description = r[2].c_str();
  m.dataset_id = r[3].c_str();
  m.architecture_json = r[4].c_str();
  m.recipe_json = r[5].c_str();
  m.policy_json = r[6].c_str();
  m.state = r[7].c_str();
  m.state_reason = r[8].c_str();
  m.latest_version = ReadInt64(r[9]);
  m.created_us = ReadInt64(r[10]);
  m.updated_us = ReadInt64(r[11]);
  return m;
}

absl::StatusOr<ModelRow> GetIn(pqxx::transaction_base& txn,
                               const std::string& id) {
  auto res = txn.exec_params(sql::kGetModel, id);
  if (res.empty()) return absl::NotFoundError(absl::StrCat("no model ", id));
  return ReadModel(res[0]);
}

// A row of queries/list_versions.sql or get_version.sql.
ModelVersionRow ReadVersion(const pqxx::row& r) {
  ModelVersionRow v;
  v.model_id = r[0].c_str();
  v.version = r[1].as<int64_t>();
  v.artifact_sha256 = ReadBytea(r[2]);
  v.size_bytes = r[3].as<int64_t>();
  v.parent_version = r[4].as<int64_t>();
  v.produced_by = r[5].c_str();
  v.created_us = ReadInt64(r[6]);
  v.deleted_us = ReadInt64(r[7]);
  v.report_json = r[8].c_str();
  v.records_removed = r[9].as<int64_t>();
  return v;
}

// The erasure requests each version absorbed.
void LoadAbsorbed(pqxx::transaction_base& txn, const std::string& model_id,
                  std::vector<ModelVersionRow>& rows) {
  if (rows.empty()) return;
  std::map<int64_t, ModelVersionRow*> by_version;
  for (auto& v : rows) by_version[v.version] = &v;
  auto res =
      txn.exec_params(sql::kAbsorbedErasures, model_id,
                      by_version.begin()->first, by_version.rbegin()->first);
  for (const auto& r : res) {
    auto it = by_version.find(r[0].as<int64_t>());
    if (it != by_version.end())
      it->second->erasure_ids.emplace_back(r[1].c_str());
  }
}

}  // namespace

absl::StatusOr<ModelRow> PgModelStore::Register(const RegisterParams& p,
                                                const std::string& actor) {
  return db_->TransactValue<ModelRow>(
      [&](Txn& txn) -> absl::StatusOr<ModelRow> {
        auto ds = txn.exec_params(sql::kDatasetExists, p.model.dataset_id);
        if (ds.empty()) {
          return absl::NotFoundError(
              absl::StrCat("no dataset ", p.model.dataset_id));
        }
        const bool has_artifact = p.artifact != nullptr;
        auto res = txn.exec_params(
            sql::kInsertModel, p.model.name, p.model.description,
            p.model.dataset_id, p.model.architecture_json, p.model.recipe_json,
            p.model.policy_json,
            has_artifact ? "PENDING_VALIDATION" : "TRAINING",
            has_artifact ? "waiting for a worker to validate the artifact"
                         : "waiting for a worker to train the model");
        if (res.empty()) {
          return absl::AlreadyExistsError(absl::StrCat(
              "a model named '", p.model.name, "' already exists"));
        }
        const std::string id = res[0][0].c_str();
        if (has_artifact) {
          if (auto st = artifacts_->Put(txn, p.artifact_sha256, *p.artifact);
              !st.ok()) {
            return st;
          }
          txn.exec_params(sql::kInsertRegisteredVersion, id,
                          Bytea(p.artifact_sha256), p.artifact->size());
        }
        internal::AppendAudit(
            txn, actor, "model.registered", "", id,
            absl::StrCat(R"({"artifact_sha256":")",
                         has_artifact ? ToHex(p.artifact_sha256) : "", "\"}"));
        txn.exec("NOTIFY lethe_models");
        return GetIn(txn, id);
      });
}

absl::StatusOr<ModelRow> PgModelStore::Get(const std::string& id) {
  return db_->TransactValue<ModelRow>([&](Txn& txn) { return GetIn(txn, id); });
}

absl::StatusOr<ModelPage> PgModelStore::List(const std::string& dataset_id,
                                             const Page& page) {
  return db_->TransactValue<ModelPage>([&](Txn& txn)
                                           -> absl::StatusOr<ModelPage> {
    const bool has_cursor = page.after.has_value();
    auto res = txn.exec_params(
        sql::kListModels, dataset_id, has_cursor,
        has_cursor ? page.after->created_us : 0,
        has_cursor ? page.after->id
                   : std::string("00000000-0000-0000-0000-000000000000"),
        page.size + 1);
    ModelPage out;
    for (const auto& r : res) {
      if (static_cast<int>(out.rows.size()) == page.size) {
        out.next = PageCursor{out.rows.back().created_us, out.rows.back().id};
        break;
      }
      out.rows.push_back(ReadModel(r));
    }
    return out;
  });
}

absl::StatusOr<VersionPage> PgModelStore::ListVersions(
    const std::string& model_id, int64_t before_version, int32_t page_size) {
  return db_->TransactValue<VersionPage>(
      [&](Txn& txn) -> absl::StatusOr<VersionPage> {
        if (auto m = GetIn(txn, model_id); !m.ok()) return m.status();
        auto res = txn.exec_params(sql::kListVersions, model_id, before_version,
                                   page_size + 1);
        VersionPage out;
        for (const auto& r : res) {
          if (static_cast<int>(out.rows.size()) == page_size) {
            out.next_before_version = out.rows.back().version;
            break;
          }
          out.rows.push_back(ReadVersion(r));
        }
        LoadAbsorbed(txn, model_id, out.rows);
        return out;
      });
}

absl::StatusOr<ModelVersionRow> PgModelStore::GetVersion(
    const std::string& model_id, int64_t version) {
  return db_->TransactValue<ModelVersionRow>(
      [&](Txn& txn) -> absl::StatusOr<ModelVersionRow> {
        if (auto m = GetIn(txn, model_id); !m.ok()) return m.status();
        auto res = txn.exec_params(sql::kGetVersion, model_id, version);
        if (res.empty()) {
          if (version == 0) {
            return absl::FailedPreconditionError(absl::StrCat(
                "model ", model_id, " has no version yet (still training)"));
          }
          return absl::NotFoundError(
              absl::StrCat("model ", model_id, " has no version ", version));
        }
        std::vector<ModelVersionRow> rows = {ReadVersion(res[0])};
        if (rows[0].deleted_us != 0) {
          return absl::FailedPreconditionError(
              absl::StrCat("version ", rows[0].version, " of model ", model_id,
                           " was deleted because it still held erased data"));
        }
        LoadAbsorbed(txn, model_id, rows);
        return std::move(rows[0]);
      });
}

absl::StatusOr<std::unique_ptr<ArtifactReader>> PgModelStore::OpenArtifact(
    const std::string& sha256) {
  return artifacts_->Open(*db_, sha256);
}

}  // namespace lethe::storage

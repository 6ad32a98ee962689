#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/hash.h"
#include "storage/postgres/sql_util.h"
#include "storage/postgres/stores.h"
#include "storage/queries_sql.h"

namespace lethe::storage {

absl::StatusOr<NewApiKey> PgApiKeyStore::Create(const ApiKeySpec& spec,
                                                const std::string& actor) {
  auto datasets = KeyDatasets(spec);
  if (!datasets.ok()) return datasets.status();
  NewApiKey key{ToHex(RandomBytes(8)), "", spec.role};
  const std::string secret = ToHex(RandomBytes(32));
  key.token = absl::StrCat("lethe_", key.key_id, "_", secret);
  const std::string array = internal::UuidArray(*datasets);
  auto st = db_->Transact([&](Txn& txn) -> absl::Status {
    auto missing = txn.exec_params(sql::kMissingDatasets, array);
    if (!missing.empty()) {
      return absl::NotFoundError(
          absl::StrCat("datasets: no dataset ", missing[0][0].c_str()));
    }
    txn.exec_params(sql::kInsertApiKey, key.key_id,
                    internal::Bytea(Sha256(secret)), RoleName(spec.role),
                    spec.description, array);
    internal::AppendAudit(
        txn, actor, "api_key.created", "", "",
        absl::StrCat(
            R"({"key_id":")", key.key_id, R"(","role":")", RoleName(spec.role),
            R"(","datasets":[)",
            datasets->empty()
                ? ""
                : absl::StrCat("\"", absl::StrJoin(*datasets, "\",\""), "\""),
            "]}"));
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return key;
}

absl::StatusOr<ApiKeyRow> PgApiKeyStore::Lookup(const std::string& key_id) {
  return db_->TransactValue<ApiKeyRow>(
      [&](Txn& txn) -> absl::StatusOr<ApiKeyRow> {
        auto res = txn.exec_params(sql::kGetApiKey, key_id);
        if (res.empty()) {
          return absl::NotFoundError(absl::StrCat("no API key ", key_id));
        }
        ApiKeyRow row;
        row.key_id = res[0][0].c_str();
        row.secret_sha256 = internal::ReadBytea(res[0][1]);
        row.role = ParseRole(res[0][2].c_str()).value_or(Role::kSubmitter);
        row.description = res[0][3].c_str();
        row.revoked = res[0][4].as<bool>();
        row.dataset_ids = internal::ParseArray(res[0][5]);
        return row;
      });
}

absl::Status PgApiKeyStore::Revoke(const std::string& key_id,
                                   const std::string& actor) {
  return db_->Transact([&](Txn& txn) -> absl::Status {
    auto res = txn.exec_params(sql::kRevokeApiKey, key_id);
    if (res.empty()) {
      return absl::NotFoundError(absl::StrCat("no API key ", key_id));
    }
    internal::AppendAudit(txn, actor, "api_key.revoked", "", "",
                          absl::StrCat(R"({"key_id":")", key_id, "\"}"));
    return absl::OkStatus();
  });
}

}  // namespace lethe::storage

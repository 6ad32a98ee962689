#include <tuple>

#include <pqxx/stream_to>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "storage/hash.h"
#include "storage/postgres/sql_util.h"
#include "storage/postgres/stores.h"
#include "storage/queries_sql.h"

namespace lethe::storage {
namespace {

using internal::ReadInt64;

// A row of queries/get_dataset.sql or list_datasets.sql.
DatasetRow ReadDataset(const pqxx::row& r) {
  DatasetRow d;
  d.id = r[0].c_str();
  d.name = r[1].c_str();
  d.description = r[2].c_str();
  for (const std::string& dim : internal::ParseArray(r[3])) {
    d.feature_shape.push_back(std::stoll(dim));
  }
  d.feature_type = r[4].c_str();
  d.num_classes = r[5].as<int32_t>();
  d.created_us = ReadInt64(r[6]);
  return d;
}

void LoadCounts(pqxx::transaction_base& txn, DatasetRow& d) {
  auto r = txn.exec_params1(sql::kDatasetRecordCounts, d.id);
  d.train_records = r[0].as<int64_t>();
  d.test_records = r[1].as<int64_t>();
  d.subjects = r[2].as<int64_t>();
}

absl::StatusOr<DatasetRow> GetIn(pqxx::transaction_base& txn,
                                 const std::string& id) {
  auto res = txn.exec_params(sql::kGetDataset, id);
  if (res.empty()) return absl::NotFoundError(absl::StrCat("no dataset ", id));
  DatasetRow d = ReadDataset(res[0]);
  LoadCounts(txn, d);
  return d;
}

// One COPY row; bytea travels as its hex text form (stream_to escapes it).
std::tuple<std::string, std::string, int32_t, std::string, std::string> CopyRow(
    const std::string& dataset_id, const RecordRow& r) {
  return {dataset_id, absl::StrCat("\\x", ToHex(r.subject_key)), r.label,
          r.test ? "test" : "train", absl::StrCat("\\x", ToHex(r.features))};
}

}  // namespace

absl::StatusOr<DatasetRow> PgDatasetStore::Create(const DatasetRow& row,
                                                  const std::string& actor) {
  return db_->TransactValue<DatasetRow>(
      [&](Txn& txn) -> absl::StatusOr<DatasetRow> {
        std::vector<std::string> dims;
        for (int64_t d : row.feature_shape) dims.push_back(absl::StrCat(d));
        auto res =
            txn.exec_params(sql::kInsertDataset, row.name, row.description,
                            absl::StrCat("{", absl::StrJoin(dims, ","), "}"),
                            row.feature_type, row.num_classes);
        if (res.empty()) {
          return absl::AlreadyExistsError(
              absl::StrCat("a dataset named '", row.name, "' already exists"));
        }
        const std::string id = res[0][0].c_str();
        internal::AppendAudit(txn, actor, "dataset.created", "", "",
                              absl::StrCat(R"({"dataset_id":")", id, "\"}"));
        return GetIn(txn, id);
      });
}

absl::StatusOr<DatasetRow> PgDatasetStore::Get(const std::string& id) {
  return db_->TransactValue<DatasetRow>(
      [&](Txn& txn) { return GetIn(txn, id); });
}

absl::StatusOr<DatasetPage> PgDatasetStore::List(const Page& page) {
  return db_->TransactValue<DatasetPage>([&](Txn& txn)
                                             -> absl::StatusOr<DatasetPage> {
    const bool has_cursor = page.after.has_value();
    auto res = txn.exec_params(
        sql::kListDatasets, has_cursor, has_cursor ? page.after->created_us : 0,
        has_cursor ? page.after->id
                   : std::string("00000000-0000-0000-0000-000000000000"),
        page.size + 1);
    DatasetPage out;
    for (const auto& r : res) {
      if (static_cast<int>(out.rows.size()) == page.size) {
        out.next = PageCursor{out.rows.back().created_us, out.rows.back().id};
        break;
      }
      out.rows.push_back(ReadDataset(r));
    }
    for (auto& d : out.rows) LoadCounts(txn, d);
    return out;
  });
}

absl::StatusOr<AddRecordsResult> PgDatasetStore::AddRecordBatches(
    const std::string& dataset_id, RecordBatches& records,
    const std::string& actor) {
  bool started = false;
  return db_->TransactValue<AddRecordsResult>(
      [&](Txn& txn) -> absl::StatusOr<AddRecordsResult> {
        if (started) {  // Database retries conflicts; `records` is spent
          return absl::AbortedError(
              "the upload met a conflicting write and was not stored; send "
              "it again");
        }
        auto lock = txn.exec_params(sql::kLockDataset, dataset_id);
        if (lock.empty()) {
          return absl::NotFoundError(absl::StrCat("no dataset ", dataset_id));
        }
        // Where this upload's records start: its new subjects are counted
        // from them alone (count_new_subjects.sql), not the whole dataset.
        const int64_t last_id =
            txn.exec1(sql::kNewestRecordId)[0].as<int64_t>();
        started = true;
        int64_t added = 0;
        {
          pqxx::stream_to copy(
              txn, "records",
              std::vector<std::string>{"dataset_id", "subject_key", "label",
                                       "split", "features"});
          std::vector<RecordRow> batch;
          while (true) {
            absl::StatusOr<bool> more = records.Next(&batch);
            // Returning without complete(): the transaction rolls back.
            if (!more.ok()) return more.status();
            if (!*more) break;
            for (const RecordRow& r : batch) copy << CopyRow(dataset_id, r);
            added += static_cast<int64_t>(batch.size());
          }
          copy.complete();
        }
        if (added == 0) {
          return absl::InvalidArgumentError("the upload holds no records");
        }
        const int64_t new_subjects =
            txn.exec_params1(sql::kCountNewSubjects, dataset_id, last_id)[0]
                .as<int64_t>();
        AddRecordsResult result{added, new_subjects};
        internal::AppendAudit(
            txn, actor, "dataset.records_added", "", "",
            absl::StrCat(R"({"dataset_id":")", dataset_id, R"(","records":)",
                         result.records_added,
                         ",\"new_subjects\":", result.new_subjects, "}"));
        return result;
      });
}

}  // namespace lethe::storage

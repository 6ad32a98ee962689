// DatasetStore: datasets and their records. Thread-safe.
#ifndef LETHE_STORAGE_DATASET_STORE_H_
#define LETHE_STORAGE_DATASET_STORE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/types.h"

namespace lethe::storage {

struct DatasetPage {
  std::vector<DatasetRow> rows;
  std::optional<PageCursor> next;
};

struct AddRecordsResult {
  int64_t records_added = 0;
  int64_t new_subjects = 0;
};

class DatasetStore {
 public:
  virtual ~DatasetStore() = default;

  // ALREADY_EXISTS if the name is taken.
  virtual absl::StatusOr<DatasetRow> Create(const DatasetRow& row,
                                            const std::string& actor) = 0;
  // With record and subject counts. NOT_FOUND if absent.
  virtual absl::StatusOr<DatasetRow> Get(const std::string& id) = 0;
  virtual absl::StatusOr<DatasetPage> List(const Page& page) = 0;

  // Appends all `records` in one transaction, or none. Uploads to one
  // dataset are serialised. NOT_FOUND if the dataset is absent.
  virtual absl::StatusOr<AddRecordsResult> AddRecords(
      const std::string& dataset_id, const std::vector<RecordRow>& records,
      const std::string& actor) = 0;
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_DATASET_STORE_H_

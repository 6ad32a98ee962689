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

// The records of one upload, pulled in batches by AddRecordBatches inside
// its transaction, so that an upload of any size is stored with one
// batch in memory.
class RecordBatches {
 public:
  virtual ~RecordBatches() = default;
  // Replaces `*batch` with the next records; false when none are left. An
  // error ends the upload with that error, and nothing is stored.
  virtual absl::StatusOr<bool> Next(std::vector<RecordRow>* batch) = 0;
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

  // Appends every record `records` yields in one transaction, or none.
  // Uploads to one dataset are serialised. NOT_FOUND if the dataset is
  // absent; INVALID_ARGUMENT if `records` yields none. `records` is read
  // once: a conflict PostgreSQL reports after it was started is ABORTED,
  // not retried here (the client sends the upload again).
  virtual absl::StatusOr<AddRecordsResult> AddRecordBatches(
      const std::string& dataset_id, RecordBatches& records,
      const std::string& actor) = 0;

  // The same for records already in memory.
  absl::StatusOr<AddRecordsResult> AddRecords(
      const std::string& dataset_id, const std::vector<RecordRow>& records,
      const std::string& actor);
};

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_DATASET_STORE_H_

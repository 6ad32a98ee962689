// Readers that build a Dataset from files: CSV and IDX (the format
// Fashion-MNIST and MNIST ship in, raw or gzip-compressed).
#ifndef LETHE_CORE_DATASET_IO_H_
#define LETHE_CORE_DATASET_IO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "lethe/core/dataset.h"
#include "lethe/core/status.h"

namespace lethe::core {

// CSV with header `subject_id,label,split,f0,...,f{K-1}`, K = NumFeatures()
// of spec; split is `train` or `test`; record ids are the 0-based data row
// numbers. Errors (INVALID_ARGUMENT) name the line: a wrong header or column
// count, a non-number, a label out of range, an unknown split.
Result<Dataset> ReadCsvDataset(const std::string& path,
                               const FeatureSpec& spec);
Result<Dataset> ParseCsvDataset(const std::string& text,
                                const FeatureSpec& spec);

// One IDX file (magic 0x00000800 | ndims, uint8 payload). Gzip input is
// detected by its magic bytes.
struct IdxArray {
  std::vector<int64_t> dims;  // dims[0] = number of items
  std::vector<uint8_t> data;
};
Result<IdxArray> ReadIdx(const std::string& path);
Result<IdxArray> ParseIdx(const std::string& bytes);
// The whole file, inflated when it is gzip.
Result<std::string> ReadFileMaybeGzip(const std::string& path);

// Subjects for data that comes without them (IDX): either one key per record
// (keys.size() must equal the number of records loaded), or consecutive
// blocks of block_size records per split, keyed "train-<b>" / "test-<b>".
struct SubjectAssignment {
  int64_t block_size = 1;
  std::vector<std::string> keys;
};

struct IdxSource {
  std::string images_path;
  std::string labels_path;
  Split split = Split::kTrain;
  int64_t max_records = -1;  // take the first max_records; -1 = all
};

// Images become uint8 features of shape {1, H, W} (or the item dims as
// stored for other ranks); labels must be below num_classes. Record ids run
// 0.. over the sources in order.
Result<Dataset> LoadIdxDataset(const std::vector<IdxSource>& sources,
                               int64_t num_classes,
                               const SubjectAssignment& subjects);

}  // namespace lethe::core

#endif  // LETHE_CORE_DATASET_IO_H_

// A training data set held in memory once and shared by reference: every
// method of a run (and the verification) reads the same tensors.
//
// Each record has features kept as they arrive, one byte a feature for
// uint8 data (a quarter of float32's memory; AsModelInput scales a batch of
// rows to float32 in [0, 1] as the model reads it), an int64 label, a split
// (train or test), a subject (the data subject whose erasure it follows; keys
// are opaque byte strings, 32 bytes as storage hands them) and a stable int64
// record id.
//
// This header is torch-light: tensors are reached through forward-declared
// at::Tensor references; include <ATen/ATen.h> to use them.
#ifndef LETHE_CORE_DATASET_H_
#define LETHE_CORE_DATASET_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lethe/core/status.h"

namespace at {
class Tensor;
}  // namespace at

namespace lethe::core {

enum class Split : uint8_t { kTrain = 0, kTest = 1 };
enum class FeatureType : uint8_t { kUint8 = 0, kFloat32 = 1 };

// What one record's features look like, and what a model for them outputs.
struct FeatureSpec {
  std::vector<int64_t> shape;  // per record, e.g. {1, 28, 28} or {784}
  FeatureType type = FeatureType::kUint8;
  int64_t num_classes = 0;

  int64_t NumFeatures() const;   // product of shape
  size_t RowBytes() const;       // NumFeatures() * (1 or 4)
  Status Validate() const;       // non-empty positive shape, num_classes >= 2
  std::string ToString() const;  // "uint8[1,28,28] -> 10 classes"
};

// Immutable; copies share the same tensors (cheap, thread-safe to read).
class Dataset {
 public:
  struct Rep;
  Dataset() = default;
  explicit Dataset(std::shared_ptr<const Rep> rep) : rep_(std::move(rep)) {}

  bool empty() const { return size() == 0; }
  int64_t size() const;
  const FeatureSpec& spec() const;
  // [N, shape...] on the CPU, as stored: uint8 (0..255) for uint8 specs,
  // float32 otherwise. What a model reads is AsModelInput of its rows.
  const at::Tensor& features() const;
  const at::Tensor& labels() const;  // [N] int64, CPU
  const std::vector<Split>& splits() const;
  const std::vector<int64_t>& record_ids() const;
  const std::vector<int32_t>& subject_index() const;  // into subjects()
  const std::vector<std::string>& subjects() const;   // distinct keys

 private:
  std::shared_ptr<const Rep> rep_;
};

// Rows of features() as a model reads them: float32, uint8 values scaled to
// [0, 1] (v * (1/255) in float32, as the data was always scaled); float32
// rows are returned as they are. Any device.
at::Tensor AsModelInput(const at::Tensor& stored_rows);

// Collects rows (as storage hands them, or from a file reader) and builds a
// Dataset. Not thread-safe.
class DatasetBuilder {
 public:
  explicit DatasetBuilder(FeatureSpec spec);
  ~DatasetBuilder();
  DatasetBuilder(const DatasetBuilder&) = delete;
  DatasetBuilder& operator=(const DatasetBuilder&) = delete;

  // raw: the record's features in spec.type, row-major, exactly RowBytes()
  // bytes (float32 little-endian). INVALID_ARGUMENT on a wrong length, a
  // label outside [0, num_classes), an empty subject key, a non-finite
  // float or a duplicate record id; the builder is unchanged then.
  Status Add(int64_t record_id, std::string_view subject_key, int64_t label,
             Split split, std::string_view raw);
  // As Add, with features already as numbers (uint8 specs: the integers
  // 0..255; anything else is INVALID_ARGUMENT).
  Status AddValues(int64_t record_id, std::string_view subject_key,
                   int64_t label, Split split, std::span<const float> values);

  int64_t size() const;
  // Room for `records` more rows, so that a large dataset is built without
  // the transient copies of a growing buffer. RESOURCE_EXHAUSTED when the
  // memory cannot be had.
  Status Reserve(int64_t records);
  // INVALID_ARGUMENT when nothing was added or the spec is invalid.
  Result<Dataset> Build() &&;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Index sets of one forgetting run. Indices are positions in the Dataset,
// ascending.
struct Partition {
  std::vector<int64_t> forget;  // train records of the forgotten subjects
  std::vector<int64_t> retain;  // all other train records
  // The test split, divided by subject (a hash of the key, so the same
  // people fall on the same side in every run): `test` is what accuracy and
  // the MIA are reported on, `validation` what the gate calibrates against
  // (calibration.h). Each holds about half of the split; the test records
  // of forgotten subjects stay in `test`.
  std::vector<int64_t> test;
  std::vector<int64_t> validation;
};

// Splits the dataset for forgetting the union of the given subjects' records.
// Keys with no record are ignored; NOT_FOUND if none of them has a train
// record. IsValidationSubject says which side of the test split a subject is
// on.
Result<Partition> PartitionBySubjects(const Dataset& data,
                                      const std::vector<std::string>& keys);
bool IsValidationSubject(std::string_view subject_key);
std::vector<int64_t> IndicesOfSplit(const Dataset& data, Split split);

// The dataset as bytes and back, for the engine sandbox (lethe/core/wire.h;
// docs/design.md "Datasets on the engine's wire"): a magic string, a
// length-prefixed header (the spec, the distinct subjects, the record
// count), then every record at a fixed size: its id, subject index, label
// and split, and its features in the spec's type. Decode rebuilds through
// DatasetBuilder, so a decoded dataset passes every check Add makes and
// equals the encoded one tensor for tensor. INVALID_ARGUMENT for bytes that
// are not such an encoding.
std::string EncodeDataset(const Dataset& data);
Result<Dataset> DecodeDataset(std::string_view bytes);

// Reads up to `max` bytes into `buf`; 0 at the end of the input.
using ByteReader = std::function<Result<size_t>(char* buf, size_t max)>;
// Decodes an encoding read front to back from `read`, holding one block of
// records at a time besides the dataset it builds (the engine process reads
// its training set this way from a pipe). `max_bytes`, when known (>= 0),
// bounds what the header may claim before anything is allocated for it;
// unbounded, a false count fails the allocation (RESOURCE_EXHAUSTED).
Result<Dataset> DecodeDataset(const ByteReader& read, int64_t max_bytes = -1);

// Writes the encoding one record at a time, for a producer that streams
// records from storage and cannot hold them (the worker, into a scratch
// file): records first, as they come, then Header(), which goes before
// them. Rejects what DatasetBuilder::Add would, except a duplicate id (the
// decoding builder still does).
class DatasetEncoder {
 public:
  explicit DatasetEncoder(FeatureSpec spec);
  // Appends the record's encoding (RecordBytes() bytes) to `out`.
  Status AddRecord(int64_t record_id, std::string_view subject_key,
                   int64_t label, Split split, std::string_view raw,
                   std::string& out);
  int64_t size() const { return count_; }
  size_t RecordBytes() const;
  // The magic and header for the records added so far.
  std::string Header() const;

 private:
  FeatureSpec spec_;
  int64_t count_ = 0;
  std::vector<std::string> subjects_;
  std::unordered_map<std::string, uint64_t> subject_ids_;
};

}  // namespace lethe::core

#endif  // LETHE_CORE_DATASET_H_

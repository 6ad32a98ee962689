// Parsers for the record formats DatasetService.UploadRecords accepts (see
// proto/lethe/v1/dataset.proto): CSV, and IDX as Fashion-MNIST ships it plus
// a subjects file. No gRPC, no database.
//
// Two forms. The streaming readers (ReadCsv, ReadIdx over OpenPart) are what
// the server runs: they decompress and parse one record at a time, so their
// memory is one record plus a 64 KiB buffer per part whatever the input
// claims (a header declaring 30M records, a gzip bomb: issue 17, item 3).
// ParseCsv, ParseIdx and MaybeGunzip are the same code collecting everything
// in memory, for tests, tools and the fuzzers.
//
// An upload is all-or-nothing: a reader's caller stores nothing unless every
// record was read without error (the server streams them into one database
// transaction and rolls it back on an error). Format errors are
// INVALID_ARGUMENT and name where the input went wrong (CSV: "line 17: ...",
// IDX: the part, the record index and the byte offset) and what to change;
// a configured limit exceeded is RESOURCE_EXHAUSTED.
//
// Thread-safe: no shared state (a reader is used by one thread at a time).
#ifndef LETHE_UPLOAD_UPLOAD_PARSER_H_
#define LETHE_UPLOAD_UPLOAD_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lethe::upload {

enum class FeatureType { kUint8, kFloat32 };

// The dataset's feature layout, as given to CreateDataset.
struct FeatureSpec {
  std::vector<int64_t> shape;  // 1..4 dimensions, each >= 1
  FeatureType type = FeatureType::kUint8;
  int32_t num_classes = 0;  // labels are 0..num_classes-1
};

// Limits from dataset.proto.
inline constexpr int64_t kMaxFeatureElements = 1 << 20;
inline constexpr size_t kMaxFeatureDims = 4;
inline constexpr int32_t kMinClasses = 2;
inline constexpr int32_t kMaxClasses = 100000;

// OK, or INVALID_ARGUMENT saying which limit `spec` breaks.
absl::Status ValidateFeatureSpec(const FeatureSpec& spec);

// Number of feature elements of one record: the product of `shape` (0, or
// above kMaxFeatureElements, for a shape ValidateFeatureSpec rejects).
int64_t ElementCount(const FeatureSpec& spec);

// One record as uploaded; the subject id is still raw (the caller keys it).
// Every subject id passed server::CheckSubjectId (server/validate.h), the
// rule SubmitErasure applies: 1..256 bytes of UTF-8 without control
// characters, so that every uploaded subject can be erased.
struct ParsedRecord {
  std::string subject_id;
  int32_t label = 0;  // in [0, num_classes)
  bool test = false;  // split: false = train, true = test
  // ElementCount(spec) elements: one byte each for kUint8, 4-byte IEEE-754
  // little-endian for kFloat32 (always finite).
  std::string features;
};

// CSV: UTF-8 (a leading byte-order mark is skipped), header exactly
// `subject_id,label,split,f0,...,fN` with N+1 = ElementCount(spec); split is
// `train` or `test`; features are integers 0..255 (kUint8) or finite decimal
// floats in float32 range (kFloat32). Lines end in LF or CRLF; the last line
// may lack one. No blank lines, no quoting (a double quote is an error), no
// spaces around fields. At least one record.
absl::StatusOr<std::vector<ParsedRecord>> ParseCsv(std::string_view csv,
                                                   const FeatureSpec& spec);

// IDX, uncompressed (see MaybeGunzip): `images` holds uint8 data (magic
// 0x00000803 for N x rows x cols; other dimension counts are accepted too)
// whose per-record element count equals ElementCount(spec) (28x28 images
// fit shape [1,28,28] and [784] alike); `labels` is magic 0x00000801 with
// the same N; `subjects` has one subject id per line (LF or CRLF, final
// newline optional), exactly N lines, in record order. Every record gets
// split `test`. Only for kUint8 datasets.
absl::StatusOr<std::vector<ParsedRecord>> ParseIdx(std::string_view images,
                                                   std::string_view labels,
                                                   std::string_view subjects,
                                                   bool test,
                                                   const FeatureSpec& spec);

// If `data` starts with the gzip magic (1f 8b), its decompressed contents
// (all members of a multi-member file); otherwise `data` unchanged. Either
// way the result is at most `max_bytes`: RESOURCE_EXHAUSTED beyond that,
// found without inflating more than max_bytes + 1 bytes (gzip bombs stay
// bounded). Corrupt or truncated gzip is INVALID_ARGUMENT.
absl::StatusOr<std::string> MaybeGunzip(std::string_view data,
                                        size_t max_bytes);

// ---------------------------------------------------------------- streaming

// Bytes read front to back.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Up to `n` bytes into `out`; 0 only at the end. Errors are final:
  // INVALID_ARGUMENT for corrupt or truncated gzip, RESOURCE_EXHAUSTED past
  // a SourceLimits limit.
  virtual absl::StatusOr<size_t> Read(char* out, size_t n) = 0;
};

struct SourceLimits {
  // Bytes the source yields at most (after decompression); more is
  // RESOURCE_EXHAUSTED, found without producing more than max_bytes + 1.
  size_t max_bytes = std::numeric_limits<size_t>::max();
  // For gzip: decompressed bytes per compressed byte read at most, checked
  // once past 1 MiB of output; 0 for no limit. Deflate reaches 1032:1 at
  // most, real datasets about 2:1 (IDX images) to 30:1 (sparse CSV).
  double max_expansion = 0;
};

// A source over `data`, or over its decompressed contents when `data`
// starts with the gzip magic (1f 8b; every member of a multi-member file).
// `data` must outlive the source.
std::unique_ptr<ByteSource> OpenPart(std::string_view data,
                                     SourceLimits limits = {});
// The same over bytes read from `raw` as sent (a spooled part): the input
// is read 64 KiB at a time, never held whole.
std::unique_ptr<ByteSource> OpenPart(std::unique_ptr<ByteSource> raw,
                                     SourceLimits limits = {});

// Records read one at a time.
class RecordReader {
 public:
  virtual ~RecordReader() = default;
  // The next record into `*record` (every field overwritten); false after
  // the last. The format's errors as ParseCsv / ParseIdx describe them, a
  // source's errors, and RESOURCE_EXHAUSTED past `max_records`. After an
  // error the reader is spent.
  virtual absl::StatusOr<bool> Next(ParsedRecord* record) = 0;
};

inline constexpr int64_t kNoRecordLimit = std::numeric_limits<int64_t>::max();

// The CSV format of ParseCsv, read from `csv`.
std::unique_ptr<RecordReader> ReadCsv(std::unique_ptr<ByteSource> csv,
                                      const FeatureSpec& spec,
                                      int64_t max_records = kNoRecordLimit);

// The IDX format of ParseIdx, read from three sources side by side. An IDX
// header declaring more than `max_records` records is refused before any
// record is read.
std::unique_ptr<RecordReader> ReadIdx(std::unique_ptr<ByteSource> images,
                                      std::unique_ptr<ByteSource> labels,
                                      std::unique_ptr<ByteSource> subjects,
                                      bool test, const FeatureSpec& spec,
                                      int64_t max_records = kNoRecordLimit);

}  // namespace lethe::upload

#endif  // LETHE_UPLOAD_UPLOAD_PARSER_H_

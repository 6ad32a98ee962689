// Helpers shared by the upload parsers; not part of lethe_upload's API.
#ifndef LETHE_UPLOAD_INTERNAL_H_
#define LETHE_UPLOAD_INTERNAL_H_

#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "upload/upload_parser.h"

namespace lethe::upload::internal {

// Our abseil's absl::string_view is its own type, not std::string_view.
inline absl::string_view Absl(std::string_view s) {
  return {s.data(), s.size()};
}

// `s` cut to `max` bytes with "..." appended, for quoting input in errors.
std::string Excerpt(std::string_view s, size_t max = 40);

// Writes `value` as 4 little-endian bytes at `out`.
inline void StoreFloat32Le(float value, char* out) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(bits >> (8 * i));
}

// A RecordReader whose first error is final: Next() answers it again
// without reading on.
class StickyReader : public RecordReader {
 public:
  absl::StatusOr<bool> Next(ParsedRecord* record) final {
    if (!status_.ok()) return status_;
    absl::StatusOr<bool> more = Read(record);
    if (!more.ok()) status_ = more.status();
    return more;
  }

 protected:
  // The reader's own step: as Next, called until it fails.
  virtual absl::StatusOr<bool> Read(ParsedRecord* record) = 0;

 private:
  absl::Status status_;
};

// Every record of `reader`, or its first error.
absl::StatusOr<std::vector<ParsedRecord>> ReadAll(RecordReader* reader);

// A source over `data` as it is (no gzip detection), for the in-memory
// parsers.
std::unique_ptr<ByteSource> PlainSource(std::string_view data);

// A ByteSource read through a buffer: exact reads for IDX, lines (as
// LineReader splits them) for CSV and subjects. Memory: the buffer, 64 KiB,
// grown only to hold one line of at most the caller's maximum.
class BufferedReader {
 public:
  explicit BufferedReader(std::unique_ptr<ByteSource> source)
      : source_(std::move(source)) {}

  // Up to `n` bytes into `out`: fewer only at the end of the source.
  absl::StatusOr<size_t> ReadExact(char* out, size_t n);

  // The next line, valid until the next call; false at the end. A line
  // over `max_length` bytes is INVALID_ARGUMENT "line N: longer than ...".
  // The first line loses a UTF-8 byte-order mark.
  absl::StatusOr<bool> NextLine(std::string_view* line, size_t max_length);
  int64_t line_number() const { return line_number_; }

  // Reads to the end: the bytes, or the lines, that were left.
  absl::StatusOr<uint64_t> SkipRest();
  absl::StatusOr<int64_t> CountRestLines();

 private:
  // Reads more into the buffer; false at the end of the source.
  absl::StatusOr<bool> Fill(size_t max_length);

  std::unique_ptr<ByteSource> source_;
  std::string buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  int64_t line_number_ = 0;
};

}  // namespace lethe::upload::internal

#endif  // LETHE_UPLOAD_INTERNAL_H_

// Helpers shared by the upload parsers; not part of lethe_upload's API.
#ifndef LETHE_UPLOAD_INTERNAL_H_
#define LETHE_UPLOAD_INTERNAL_H_

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

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

// Splits text into lines ending in LF or CRLF; the last line may lack its
// newline. Line numbers start at 1.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {}
  // False at the end of the text (a final newline ends the last line; it
  // does not start an empty one).
  bool Next(std::string_view* line) {
    if (pos_ >= text_.size()) return false;
    const char* start = text_.data() + pos_;
    const void* nl = std::memchr(start, '\n', text_.size() - pos_);
    size_t len = nl == nullptr ? text_.size() - pos_
                               : static_cast<const char*>(nl) - start;
    pos_ += len + 1;
    ++line_number_;
    if (len > 0 && start[len - 1] == '\r') --len;
    *line = std::string_view(start, len);
    return true;
  }
  int64_t line_number() const { return line_number_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  int64_t line_number_ = 0;
};

// Removes a UTF-8 byte-order mark.
inline std::string_view SkipBom(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  return text;
}

// Counts the lines LineReader would yield.
size_t CountLines(std::string_view text);

}  // namespace lethe::upload::internal

#endif  // LETHE_UPLOAD_INTERNAL_H_

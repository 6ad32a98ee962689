// MaybeGunzip: zlib inflate (RFC 1952 gzip framing), output bounded.
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "upload/upload_parser.h"

namespace lethe::upload {
namespace {

bool IsGzip(std::string_view data) {
  return data.size() >= 2 && static_cast<uint8_t>(data[0]) == 0x1f &&
         static_cast<uint8_t>(data[1]) == 0x8b;
}

absl::Status TooLarge(size_t max_bytes, bool compressed) {
  return absl::ResourceExhaustedError(absl::StrCat(
      compressed ? "the gzip data decompresses to more than "
                 : "the data is larger than ",
      max_bytes, " bytes, the limit; split it into smaller uploads"));
}

// Deflate's best ratio: 258-byte matches in ~2 bits each (zlib's FAQ: 1032
// to 1).
constexpr size_t kMaxDeflateRatio = 1032;

// A first output size: the gzip trailer's ISIZE (size mod 2^32 of the last
// member), but never more than the input could inflate to, nor the limit;
// else something modest that doubles. ISIZE is a claim: a 20-byte corrupt
// file claiming 4 GiB made this allocate the whole limit (issue 17).
size_t InitialSize(std::string_view data, size_t cap) {
  size_t guess = size_t{1} << 16;
  if (data.size() >= 18) {
    const auto* t =
        reinterpret_cast<const uint8_t*>(data.data() + data.size() - 4);
    size_t isize = t[0] | t[1] << 8 | t[2] << 16 | size_t{t[3]} << 24;
    guess =
        std::max(guess, std::min(isize + 1, data.size() * kMaxDeflateRatio));
  }
  return std::min(guess, cap);
}

struct InflateEnd {
  void operator()(z_stream* z) const { inflateEnd(z); }
};

}  // namespace

absl::StatusOr<std::string> MaybeGunzip(std::string_view data,
                                        size_t max_bytes) {
  if (!IsGzip(data)) {
    if (data.size() > max_bytes) return TooLarge(max_bytes, false);
    return std::string(data);
  }
  // Producing cap bytes proves the output is over the limit.
  const size_t cap = max_bytes == SIZE_MAX ? max_bytes : max_bytes + 1;
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
    return absl::InternalError("zlib inflateInit2 failed");
  }
  std::unique_ptr<z_stream, InflateEnd> end(&z);
  const auto* in = reinterpret_cast<const Bytef*>(data.data());
  size_t in_pos = 0, out_pos = 0;
  std::string out(InitialSize(data, cap), '\0');
  while (true) {
    if (z.avail_in == 0 && in_pos < data.size()) {
      z.next_in = const_cast<Bytef*>(in + in_pos);
      z.avail_in =
          static_cast<uInt>(std::min<size_t>(data.size() - in_pos, UINT_MAX));
    }
    if (out_pos == out.size()) {
      if (out.size() >= cap) return TooLarge(max_bytes, true);
      out.resize(std::min(cap, out.size() * 2));
    }
    z.next_out = reinterpret_cast<Bytef*>(out.data() + out_pos);
    z.avail_out =
        static_cast<uInt>(std::min<size_t>(out.size() - out_pos, UINT_MAX));
    const uInt had_in = z.avail_in, had_out = z.avail_out;
    const int ret = inflate(&z, Z_NO_FLUSH);
    in_pos += had_in - z.avail_in;
    out_pos += had_out - z.avail_out;
    if (ret == Z_STREAM_END) {
      if (in_pos == data.size()) break;
      if (IsGzip(data.substr(in_pos))) {  // next member of a multi-member file
        inflateReset(&z);
        continue;
      }
      return absl::InvalidArgumentError(absl::StrCat(
          data.size() - in_pos,
          " bytes after the end of the gzip data at byte ", "offset ", in_pos,
          "; upload the file exactly as gzip wrote it"));
    }
    if (ret != Z_OK && ret != Z_BUF_ERROR) {
      return absl::InvalidArgumentError(
          absl::StrCat("corrupt gzip data near byte offset ", in_pos,
                       " (zlib: ", z.msg != nullptr ? z.msg : zError(ret),
                       "); upload the file again or uncompressed"));
    }
    if (in_pos == data.size() && z.avail_in == 0 && z.avail_out > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the gzip data is truncated: it ends at byte offset ", data.size(),
          " inside a compressed stream; upload the complete file"));
    }
  }
  if (out_pos > max_bytes) return TooLarge(max_bytes, true);
  out.resize(out_pos);
  return out;
}

}  // namespace lethe::upload

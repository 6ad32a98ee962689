// The byte sources: plain bytes, and zlib inflate (RFC 1952 gzip framing)
// with bounded output; the buffered reader the parsers read them through;
// MaybeGunzip on top of them.
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "upload/internal.h"
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

// `inner`'s bytes as they are, past `max_bytes` RESOURCE_EXHAUSTED.
class Plain : public ByteSource {
 public:
  Plain(std::unique_ptr<ByteSource> inner, size_t max_bytes)
      : inner_(std::move(inner)), max_bytes_(max_bytes) {}

  absl::StatusOr<size_t> Read(char* out, size_t n) override {
    absl::StatusOr<size_t> got = inner_->Read(out, n);
    if (!got.ok()) return got;
    produced_ += *got;
    if (produced_ > max_bytes_) return TooLarge(max_bytes_, false);
    return got;
  }

 private:
  std::unique_ptr<ByteSource> inner_;
  size_t max_bytes_;
  size_t produced_ = 0;
};

// Output past this is judged by SourceLimits::max_expansion.
constexpr size_t kExpansionFloor = size_t{1} << 20;
// Compressed input is read from the inner source in pieces of this size.
constexpr size_t kInputBytes = size_t{64} << 10;

// Inflates `inner` (gzip framing, every member of a multi-member file)
// with bounded output; holds kInputBytes of input at a time.
class Gunzip : public ByteSource {
 public:
  Gunzip(std::unique_ptr<ByteSource> inner, SourceLimits limits)
      : inner_(std::move(inner)), limits_(limits), in_(kInputBytes, '\0') {
    if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) {
      status_ = absl::InternalError("zlib inflateInit2 failed");
    } else {
      initialised_ = true;
    }
  }
  ~Gunzip() override {
    if (initialised_) inflateEnd(&z_);
  }
  Gunzip(const Gunzip&) = delete;
  Gunzip& operator=(const Gunzip&) = delete;

  absl::StatusOr<size_t> Read(char* out, size_t n) override {
    if (!status_.ok()) return status_;
    if (done_ || n == 0) return 0;
    // Producing max_bytes + 1 proves the output is over the limit.
    const size_t cap =
        limits_.max_bytes == SIZE_MAX ? SIZE_MAX : limits_.max_bytes + 1;
    const size_t want = std::min({n, cap - produced_, size_t{UINT_MAX}});
    z_.next_out = reinterpret_cast<Bytef*>(out);
    z_.avail_out = static_cast<uInt>(want);
    while (z_.avail_out == want) {  // until some output, or the end
      if (absl::Status st = Refill(1); !st.ok()) return Fail(st);
      const uInt had_in = z_.avail_in;
      const int ret = inflate(&z_, Z_NO_FLUSH);
      pos_ += had_in - z_.avail_in;
      if (ret == Z_STREAM_END) {
        if (absl::Status st = Refill(2); !st.ok()) return Fail(st);
        if (z_.avail_in == 0) {
          done_ = true;
          break;
        }
        if (z_.avail_in >= 2 && z_.next_in[0] == 0x1f &&
            z_.next_in[1] == 0x8b) {
          inflateReset(&z_);  // the next member of a multi-member file
          continue;
        }
        return Fail(Trailing());
      }
      if (ret != Z_OK && ret != Z_BUF_ERROR) {
        return Fail(absl::InvalidArgumentError(
            absl::StrCat("corrupt gzip data near byte offset ", pos_,
                         " (zlib: ", z_.msg != nullptr ? z_.msg : zError(ret),
                         "); upload the file again or uncompressed")));
      }
      if (z_.avail_in == 0 && z_.avail_out > 0) {
        if (absl::Status st = Refill(1); !st.ok()) return Fail(st);
        if (z_.avail_in == 0) {
          return Fail(absl::InvalidArgumentError(absl::StrCat(
              "the gzip data is truncated: it ends at byte offset ", pos_,
              " inside a compressed stream; upload the complete file")));
        }
      }
    }
    const size_t got = want - z_.avail_out;
    produced_ += got;
    if (produced_ > limits_.max_bytes) {
      return Fail(TooLarge(limits_.max_bytes, true));
    }
    if (limits_.max_expansion > 0 && produced_ > kExpansionFloor &&
        static_cast<double>(produced_) >
            limits_.max_expansion *
                static_cast<double>(std::max<size_t>(pos_, 1))) {
      return Fail(absl::ResourceExhaustedError(absl::StrCat(
          "the gzip data expands more than ", limits_.max_expansion, " times (",
          produced_, " bytes from the first ", pos_,
          "), the limit for one upload; upload it uncompressed or ask the "
          "operator to raise --max-upload-expansion")));
    }
    return got;
  }

 private:
  // Makes at least `want` bytes of input available unless the inner source
  // ends first: the unread input moves to the buffer's front, and the rest
  // of the buffer is filled.
  absl::Status Refill(size_t want) {
    if (z_.avail_in >= want || inner_done_) return absl::OkStatus();
    if (z_.avail_in > 0 && z_.next_in != reinterpret_cast<Bytef*>(in_.data())) {
      std::memmove(in_.data(), z_.next_in, z_.avail_in);
    }
    size_t have = z_.avail_in;
    while (have < want && !inner_done_) {
      absl::StatusOr<size_t> got =
          inner_->Read(in_.data() + have, in_.size() - have);
      if (!got.ok()) return got.status();
      if (*got == 0) inner_done_ = true;
      have += *got;
    }
    z_.next_in = reinterpret_cast<Bytef*>(in_.data());
    z_.avail_in = static_cast<uInt>(have);
    return absl::OkStatus();
  }

  // What follows the last gzip member: counted (the rest of the input is
  // read), as the message names how much there is.
  absl::Status Trailing() {
    size_t extra = z_.avail_in;
    while (!inner_done_) {
      absl::StatusOr<size_t> got = inner_->Read(in_.data(), in_.size());
      if (!got.ok()) return got.status();
      if (*got == 0) inner_done_ = true;
      extra += *got;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        extra, " bytes after the end of the gzip data at byte offset ", pos_,
        "; upload the file exactly as gzip wrote it"));
  }

  absl::Status Fail(absl::Status st) {
    status_ = st;
    return st;
  }

  std::unique_ptr<ByteSource> inner_;
  SourceLimits limits_;
  std::string in_;  // compressed input, z_.next_in points into it
  bool inner_done_ = false;
  z_stream z_{};
  bool initialised_ = false;
  absl::Status status_;
  size_t pos_ = 0;       // compressed bytes consumed
  size_t produced_ = 0;  // decompressed bytes returned
  bool done_ = false;
};

// Replays the bytes OpenPart read to tell gzip from plain, then `inner`.
class Prefixed : public ByteSource {
 public:
  Prefixed(std::string prefix, std::unique_ptr<ByteSource> inner)
      : prefix_(std::move(prefix)), inner_(std::move(inner)) {}

  absl::StatusOr<size_t> Read(char* out, size_t n) override {
    if (used_ < prefix_.size()) {
      const size_t k = std::min(n, prefix_.size() - used_);
      std::memcpy(out, prefix_.data() + used_, k);
      used_ += k;
      return k;
    }
    return inner_->Read(out, n);
  }

 private:
  const std::string prefix_;
  size_t used_ = 0;
  std::unique_ptr<ByteSource> inner_;
};

// `data` as it is, with no limit (the raw input of OpenPart).
class View : public ByteSource {
 public:
  explicit View(std::string_view data) : data_(data) {}
  absl::StatusOr<size_t> Read(char* out, size_t n) override {
    const size_t k = std::min(n, data_.size() - pos_);
    if (k > 0) std::memcpy(out, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

constexpr size_t kBufferBytes = size_t{64} << 10;

}  // namespace

std::unique_ptr<ByteSource> OpenPart(std::unique_ptr<ByteSource> raw,
                                     SourceLimits limits) {
  // The first two bytes tell gzip (1f 8b) from plain. A read error here is
  // left for the next Read of `raw` to report.
  std::string head(2, '\0');
  size_t have = 0;
  while (have < head.size()) {
    absl::StatusOr<size_t> got =
        raw->Read(head.data() + have, head.size() - have);
    if (!got.ok() || *got == 0) break;
    have += *got;
  }
  head.resize(have);
  const bool gzip = IsGzip(head);
  auto all = std::make_unique<Prefixed>(std::move(head), std::move(raw));
  if (gzip) return std::make_unique<Gunzip>(std::move(all), limits);
  return std::make_unique<Plain>(std::move(all), limits.max_bytes);
}

std::unique_ptr<ByteSource> OpenPart(std::string_view data,
                                     SourceLimits limits) {
  return OpenPart(std::make_unique<View>(data), limits);
}

absl::StatusOr<std::string> MaybeGunzip(std::string_view data,
                                        size_t max_bytes) {
  if (!IsGzip(data)) {
    if (data.size() > max_bytes) return TooLarge(max_bytes, false);
    return std::string(data);
  }
  // The output grows as it is produced: the gzip trailer's size is a claim
  // (a 20-byte corrupt file claiming 4 GiB once made this allocate the
  // whole limit: issue 17).
  Gunzip source(std::make_unique<View>(data), SourceLimits{max_bytes, 0});
  std::string out;
  size_t used = 0;
  while (true) {
    if (used == out.size()) {
      const size_t limit = max_bytes == SIZE_MAX ? SIZE_MAX : max_bytes + 1;
      out.resize(std::min(limit, std::max(kBufferBytes, 2 * out.size())));
    }
    absl::StatusOr<size_t> got =
        source.Read(out.data() + used, out.size() - used);
    if (!got.ok()) return got.status();
    if (*got == 0) break;
    used += *got;
  }
  out.resize(used);
  return out;
}

namespace internal {

std::unique_ptr<ByteSource> PlainSource(std::string_view data) {
  return std::make_unique<View>(data);
}

absl::StatusOr<bool> BufferedReader::Fill(size_t max_length) {
  if (eof_) return false;
  if (pos_ > 0) {  // keep only what is unread
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (end_ == buf_.size()) {
    const size_t grown = std::max(kBufferBytes, 2 * buf_.size());
    buf_.resize(std::min(grown, std::max(kBufferBytes, max_length + 2)));
    if (end_ == buf_.size()) return true;  // full: the caller judges the line
  }
  absl::StatusOr<size_t> got =
      source_->Read(buf_.data() + end_, buf_.size() - end_);
  if (!got.ok()) return got.status();
  if (*got == 0) {
    eof_ = true;
    return false;
  }
  end_ += *got;
  return true;
}

absl::StatusOr<size_t> BufferedReader::ReadExact(char* out, size_t n) {
  size_t done = std::min(n, end_ - pos_);
  if (done > 0) std::memcpy(out, buf_.data() + pos_, done);
  pos_ += done;
  while (done < n && !eof_) {
    if (n - done >= kBufferBytes) {  // large: straight into `out`
      absl::StatusOr<size_t> got = source_->Read(out + done, n - done);
      if (!got.ok()) return got.status();
      if (*got == 0) eof_ = true;
      done += *got;
      continue;
    }
    absl::StatusOr<bool> more = Fill(kBufferBytes);
    if (!more.ok()) return more.status();
    const size_t k = std::min(n - done, end_ - pos_);
    if (k > 0) std::memcpy(out + done, buf_.data() + pos_, k);
    pos_ += k;
    done += k;
  }
  return done;
}

absl::StatusOr<bool> BufferedReader::NextLine(std::string_view* line,
                                              size_t max_length) {
  size_t scanned = 0;  // bytes after pos_ known to hold no newline
  while (true) {
    const char* start = buf_.data() + pos_;
    const void* nl = std::memchr(start + scanned, '\n', end_ - pos_ - scanned);
    size_t len = 0;
    if (nl != nullptr) {
      len = static_cast<const char*>(nl) - start;
      pos_ += len + 1;
    } else if (eof_) {
      if (pos_ == end_) return false;  // a final newline ends the last line
      len = end_ - pos_;
      pos_ = end_;
    } else {
      scanned = end_ - pos_;
      if (scanned > max_length + 1) {  // + 1: a CR before the LF
        return absl::InvalidArgumentError(absl::StrCat(
            "line ", line_number_ + 1, ": longer than ", max_length,
            " bytes, more than one record can take; check the line endings "
            "and the format"));
      }
      absl::StatusOr<bool> more = Fill(max_length);
      if (!more.ok()) return more.status();
      continue;
    }
    ++line_number_;
    if (len > 0 && start[len - 1] == '\r') --len;
    std::string_view text(start, len);
    if (line_number_ == 1 && text.substr(0, 3) == "\xEF\xBB\xBF") {
      text.remove_prefix(3);
    }
    if (text.size() > max_length) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number_, ": longer than ", max_length,
          " bytes, more than one record can take; check the line endings "
          "and the format"));
    }
    *line = text;
    return true;
  }
}

absl::StatusOr<uint64_t> BufferedReader::SkipRest() {
  uint64_t n = end_ - pos_;
  pos_ = end_;
  while (true) {
    absl::StatusOr<bool> more = Fill(kBufferBytes);
    if (!more.ok()) return more.status();
    if (!*more) return n;
    n += end_ - pos_;
    pos_ = end_;
  }
}

absl::StatusOr<int64_t> BufferedReader::CountRestLines() {
  int64_t lines = 0;
  bool in_line = false;  // a line has started and not ended
  while (true) {
    while (pos_ < end_) {
      const char* start = buf_.data() + pos_;
      const void* nl = std::memchr(start, '\n', end_ - pos_);
      if (nl == nullptr) {
        in_line = true;
        pos_ = end_;
        break;
      }
      pos_ += static_cast<const char*>(nl) - start + 1;
      ++lines;
      in_line = false;
    }
    absl::StatusOr<bool> more = Fill(kBufferBytes);
    if (!more.ok()) return more.status();
    if (!*more) {
      if (in_line) ++lines;
      line_number_ += lines;
      return lines;
    }
  }
}

}  // namespace internal
}  // namespace lethe::upload

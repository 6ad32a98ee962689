// The in-memory pieces of model_store.h: StringByteStream, a checked string
// reader, and the collectors over ArtifactReader.
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "storage/hash.h"
#include "storage/model_store.h"

namespace lethe::storage {
namespace {

class StringArtifactReader final : public ArtifactReader {
 public:
  StringArtifactReader(std::string bytes, std::string sha256)
      : bytes_(std::move(bytes)), sha256_(std::move(sha256)) {}

  absl::StatusOr<bool> Next(std::string* chunk) override {
    chunk->clear();
    if (offset_ == 0 && Sha256(bytes_) != sha256_) {
      return absl::DataLossError(
          absl::StrCat("artifact ", ToHex(sha256_),
                       " is corrupt: its digest does not match"));
    }
    if (offset_ >= bytes_.size()) return false;
    const size_t n = std::min(kArtifactChunkBytes, bytes_.size() - offset_);
    chunk->assign(bytes_, offset_, n);
    offset_ += n;
    return true;
  }

  int64_t size() const override { return static_cast<int64_t>(bytes_.size()); }

 private:
  const std::string bytes_;
  const std::string sha256_;
  size_t offset_ = 0;
};

}  // namespace

absl::StatusOr<size_t> StringByteStream::Read(char* buf, size_t max) {
  const size_t n = std::min(max, bytes_.size() - offset_);
  std::memcpy(buf, bytes_.data() + offset_, n);
  offset_ += n;
  return n;
}

absl::Status StringByteStream::Rewind() {
  offset_ = 0;
  return absl::OkStatus();
}

int64_t StringByteStream::size() const {
  return static_cast<int64_t>(bytes_.size());
}

absl::StatusOr<size_t> PrefixedStream::Read(char* buf, size_t max) {
  if (offset_ < head_.size()) {
    const size_t n = std::min(max, head_.size() - offset_);
    std::memcpy(buf, head_.data() + offset_, n);
    offset_ += n;
    return n;
  }
  if (tail_ == nullptr) return size_t{0};
  return tail_->Read(buf, max);
}

absl::Status PrefixedStream::Rewind() {
  offset_ = 0;
  return tail_ == nullptr ? absl::OkStatus() : tail_->Rewind();
}

int64_t PrefixedStream::size() const {
  return static_cast<int64_t>(head_.size()) +
         (tail_ == nullptr ? 0 : tail_->size());
}

absl::StatusOr<size_t> ConcatStream::Read(char* buf, size_t max) {
  if (!first_done_ && first_ != nullptr) {
    absl::StatusOr<size_t> n = first_->Read(buf, max);
    if (!n.ok() || *n > 0 || max == 0) return n;
  }
  first_done_ = true;
  if (second_ == nullptr) return size_t{0};
  return second_->Read(buf, max);
}

absl::Status ConcatStream::Rewind() {
  first_done_ = false;
  if (first_ != nullptr) {
    if (absl::Status st = first_->Rewind(); !st.ok()) return st;
  }
  return second_ == nullptr ? absl::OkStatus() : second_->Rewind();
}

int64_t ConcatStream::size() const {
  return (first_ == nullptr ? 0 : first_->size()) +
         (second_ == nullptr ? 0 : second_->size());
}

absl::StatusOr<std::string> ReadWholeStream(ByteStream& in) {
  if (auto st = in.Rewind(); !st.ok()) return st;
  std::string out(static_cast<size_t>(std::max<int64_t>(in.size(), 0)), '\0');
  size_t filled = 0;
  for (;;) {
    if (filled == out.size()) out.resize(filled + 4096);
    auto n = in.Read(out.data() + filled, out.size() - filled);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    filled += *n;
  }
  out.resize(filled);
  return out;
}

absl::StatusOr<std::string> ReadWholeArtifact(ArtifactReader& reader) {
  std::string out;
  out.reserve(static_cast<size_t>(std::max<int64_t>(reader.size(), 0)));
  std::string chunk;
  for (;;) {
    auto more = reader.Next(&chunk);
    if (!more.ok()) return more.status();
    if (!*more) return out;
    out += chunk;
  }
}

std::unique_ptr<ArtifactReader> NewStringArtifactReader(std::string bytes,
                                                        std::string sha256) {
  return std::make_unique<StringArtifactReader>(std::move(bytes),
                                                std::move(sha256));
}

absl::StatusOr<std::string> ModelStore::ReadArtifact(
    const std::string& sha256) {
  auto reader = OpenArtifact(sha256);
  if (!reader.ok()) return reader.status();
  return ReadWholeArtifact(**reader);
}

}  // namespace lethe::storage

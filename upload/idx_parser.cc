// ParseIdx: IDX as described at http://yann.lecun.com/exdb/mnist/ ("THE IDX
// FILE FORMAT"): two zero bytes, a data-type byte (0x08 = unsigned byte), a
// dimension count, then each dimension as a big-endian uint32, then the data
// in row-major order.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "upload/internal.h"
#include "upload/upload_parser.h"
#include "validate/validate.h"

namespace lethe::upload {
namespace {

using internal::Absl;

constexpr uint8_t kUnsignedByte = 0x08;
constexpr uint8_t kMaxDims = 8;

struct IdxFile {
  std::vector<uint32_t> dims;  // dims[0] is the record count
  uint64_t record_size = 1;    // product of the other dimensions
  size_t data_offset = 0;      // header size, for byte offsets in errors
};

absl::Status PartError(std::string_view part, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Absl(part), ": ", Absl(what)));
}

// A source's error (corrupt gzip, a limit), its code kept, named by part.
absl::Status InPart(std::string_view part, const absl::Status& st) {
  return absl::Status(st.code(), absl::StrCat(Absl(part), ": ", st.message()));
}

std::string TypeName(uint8_t type) {
  switch (type) {
    case 0x09:
      return "0x09 (signed byte)";
    case 0x0B:
      return "0x0B (int16)";
    case 0x0C:
      return "0x0C (int32)";
    case 0x0D:
      return "0x0D (float32)";
    case 0x0E:
      return "0x0E (float64)";
    default:
      return absl::StrCat("0x", absl::Hex(type, absl::kZeroPad2));
  }
}

// Reads and checks the header of an unsigned-byte IDX file. `magic` names
// the magic number expected, for messages; `dims` is the dimension count
// required (0: any from 1 to kMaxDims).
absl::StatusOr<IdxFile> ReadHeader(internal::BufferedReader& in,
                                   std::string_view part,
                                   std::string_view magic, uint8_t dims) {
  char head[4 + 4 * kMaxDims];
  absl::StatusOr<size_t> got = in.ReadExact(head, 4);
  if (!got.ok()) return InPart(part, got.status());
  if (*got < 4) {
    return PartError(part, absl::StrCat("only ", *got,
                                        " bytes; an IDX file starts with the "
                                        "4-byte magic number ",
                                        Absl(magic)));
  }
  auto byte = [&](size_t i) { return static_cast<uint8_t>(head[i]); };
  if (byte(0) != 0 || byte(1) != 0) {
    std::string hint = byte(0) == 0x1f && byte(1) == 0x8b
                           ? " (it is gzip-compressed data that failed to "
                             "decompress)"
                           : "";
    return PartError(part, absl::StrCat("byte offset 0: not an IDX file; the "
                                        "magic number must be ",
                                        Absl(magic), hint));
  }
  if (byte(2) != kUnsignedByte) {
    return PartError(
        part, absl::StrCat("byte offset 2: data type ", TypeName(byte(2)),
                           " is not supported; lethe reads unsigned "
                           "bytes (0x08), magic number ",
                           Absl(magic)));
  }
  const uint8_t ndims = byte(3);
  if ((dims != 0 && ndims != dims) || ndims < 1 || ndims > kMaxDims) {
    return PartError(
        part, absl::StrCat("byte offset 3: ", ndims,
                           " dimensions; expected magic number ", Absl(magic)));
  }
  IdxFile file;
  file.data_offset = 4 + 4 * size_t{ndims};
  got = in.ReadExact(head + 4, 4 * size_t{ndims});
  if (!got.ok()) return InPart(part, got.status());
  if (*got < 4 * size_t{ndims}) {
    return PartError(part, absl::StrCat("truncated header: ", ndims,
                                        " dimensions need ", file.data_offset,
                                        " bytes, the file has ", 4 + *got));
  }
  for (size_t d = 0; d < ndims; ++d) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | byte(4 + 4 * d + i);
    file.dims.push_back(v);
    if (d == 0) continue;
    // Saturates far above any valid record size instead of overflowing.
    constexpr uint64_t kHuge = uint64_t{1} << 40;
    file.record_size =
        v != 0 && file.record_size > kHuge / v ? kHuge : file.record_size * v;
  }
  if (file.dims[0] == 0) {
    return PartError(
        part, "the header declares 0 records; upload a file with records");
  }
  return file;
}

// The error for a file that ends `have` bytes into its data.
absl::Status Truncated(const IdxFile& file, std::string_view part,
                       std::string_view noun, uint64_t have) {
  const uint64_t want = uint64_t{file.dims[0]} * file.record_size;
  return PartError(
      part,
      absl::StrCat("truncated: the header declares ", file.dims[0], " ",
                   Absl(noun), "s of ", file.record_size,
                   file.record_size == 1 ? " byte (" : " bytes (",
                   file.data_offset + want,
                   " bytes in all) but the file ends at byte offset ",
                   file.data_offset + have, ", inside ", Absl(noun), " ",
                   have / file.record_size, "; upload the complete file"));
}

// OK if `in` has nothing after the records `file` declares.
absl::Status CheckEnd(internal::BufferedReader& in, const IdxFile& file,
                      std::string_view part, std::string_view noun) {
  absl::StatusOr<uint64_t> extra = in.SkipRest();
  if (!extra.ok()) return InPart(part, extra.status());
  if (*extra == 0) return absl::OkStatus();
  const uint64_t want = uint64_t{file.dims[0]} * file.record_size;
  return PartError(
      part,
      absl::StrCat(*extra, " unexpected bytes at byte offset ",
                   file.data_offset + want, " after the last of the ",
                   file.dims[0], " ", Absl(noun),
                   "s the header declares; upload an unmodified IDX file"));
}

std::string Dims(const std::vector<uint32_t>& dims) {
  return absl::StrJoin(dims.begin() + 1, dims.end(), "x");
}

// Subject ids are at most 256 bytes; a longer line is refused by the
// subject-id rule, and one past this is not buffered at all.
constexpr size_t kMaxSubjectLine = 4096;

class IdxReader : public internal::StickyReader {
 public:
  IdxReader(std::unique_ptr<ByteSource> images,
            std::unique_ptr<ByteSource> labels,
            std::unique_ptr<ByteSource> subjects, bool test,
            const FeatureSpec& spec, int64_t max_records)
      : images_(std::move(images)),
        labels_(std::move(labels)),
        subjects_(std::move(subjects)),
        test_(test),
        spec_(spec),
        max_records_(max_records) {}

 private:
  absl::Status Start() {
    if (absl::Status s = ValidateFeatureSpec(spec_); !s.ok()) return s;
    if (spec_.type != FeatureType::kUint8) {
      return absl::InvalidArgumentError(
          "IDX uploads need a dataset with feature type UINT8 (IDX images "
          "are bytes); this dataset is FLOAT32: upload CSV instead");
    }
    elements_ = ElementCount(spec_);
    absl::StatusOr<IdxFile> image_file =
        ReadHeader(images_, "images", "0x00000803", 0);
    if (!image_file.ok()) return image_file.status();
    image_file_ = *std::move(image_file);
    if (image_file_.record_size != static_cast<uint64_t>(elements_)) {
      return PartError(
          "images",
          absl::StrCat(
              "each image has ", image_file_.record_size, " elements (",
              image_file_.dims.size() == 1 ? "1" : Dims(image_file_.dims),
              ") but the dataset's feature shape [",
              absl::StrJoin(spec_.shape, ","), "] has ", elements_,
              "; upload to a dataset whose shape matches"));
    }
    absl::StatusOr<IdxFile> label_file =
        ReadHeader(labels_, "labels", "0x00000801", 1);
    if (!label_file.ok()) return label_file.status();
    label_file_ = *std::move(label_file);
    n_ = image_file_.dims[0];
    if (label_file_.dims[0] != n_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the images file holds ", n_, " records but the labels file holds ",
          label_file_.dims[0],
          "; upload the labels that belong to these images"));
    }
    if (static_cast<int64_t>(n_) > max_records_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("images: the header declares ", n_,
                       " records; one upload holds at "
                       "most ",
                       max_records_, "; split the files into several uploads"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> Read(ParsedRecord* record) override {
    if (!started_) {
      if (absl::Status s = Start(); !s.ok()) return s;
      started_ = true;
    }
    if (i_ == n_) {
      if (!ended_) {
        if (absl::Status s = Finish(); !s.ok()) return s;
        ended_ = true;
      }
      return false;
    }
    record->features.resize(static_cast<size_t>(elements_));
    absl::StatusOr<size_t> got =
        images_.ReadExact(record->features.data(), record->features.size());
    if (!got.ok()) return InPart("images", got.status());
    if (*got < record->features.size()) {
      return Truncated(image_file_, "images", "image",
                       i_ * image_file_.record_size + *got);
    }
    char label_byte = 0;
    got = labels_.ReadExact(&label_byte, 1);
    if (!got.ok()) return InPart("labels", got.status());
    if (*got == 0) return Truncated(label_file_, "labels", "label", i_);
    const uint8_t label = static_cast<uint8_t>(label_byte);
    if (label >= spec_.num_classes) {
      return PartError(
          "labels",
          absl::StrCat("record ", i_, " (byte offset ",
                       label_file_.data_offset + i_, ") has label ", label,
                       "; the dataset has ", spec_.num_classes,
                       " classes, labels 0..", spec_.num_classes - 1));
    }
    std::string_view line;
    absl::StatusOr<bool> more = subjects_.NextLine(&line, kMaxSubjectLine);
    if (!more.ok()) return InPart("subjects", more.status());
    if (!*more) return LineCountError(i_);
    if (absl::Status st = server::CheckSubjectId(line); !st.ok()) {
      return PartError("subjects",
                       absl::StrCat("line ", i_ + 1, ": ", st.message()));
    }
    record->subject_id.assign(line);
    record->label = label;
    record->test = test_;
    ++i_;
    return true;
  }

  // After the last record: nothing may follow it in any part.
  absl::Status Finish() {
    if (absl::Status s = CheckEnd(images_, image_file_, "images", "image");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckEnd(labels_, label_file_, "labels", "label");
        !s.ok()) {
      return s;
    }
    absl::StatusOr<int64_t> extra = subjects_.CountRestLines();
    if (!extra.ok()) return InPart("subjects", extra.status());
    if (*extra > 0) return LineCountError(n_ + static_cast<uint64_t>(*extra));
    return absl::OkStatus();
  }

  absl::Status LineCountError(uint64_t lines) const {
    return PartError(
        "subjects",
        absl::StrCat(lines, " lines but the images file holds ", n_,
                     " records; give exactly one subject id per line, one "
                     "line per record, in record order"));
  }

  internal::BufferedReader images_, labels_, subjects_;
  const bool test_;
  const FeatureSpec spec_;
  const int64_t max_records_;
  int64_t elements_ = 0;
  IdxFile image_file_, label_file_;
  uint64_t n_ = 0;  // records the headers declare
  uint64_t i_ = 0;  // records read
  bool started_ = false;
  bool ended_ = false;
};

}  // namespace

std::unique_ptr<RecordReader> ReadIdx(std::unique_ptr<ByteSource> images,
                                      std::unique_ptr<ByteSource> labels,
                                      std::unique_ptr<ByteSource> subjects,
                                      bool test, const FeatureSpec& spec,
                                      int64_t max_records) {
  return std::make_unique<IdxReader>(std::move(images), std::move(labels),
                                     std::move(subjects), test, spec,
                                     max_records);
}

absl::StatusOr<std::vector<ParsedRecord>> ParseIdx(std::string_view images,
                                                   std::string_view labels,
                                                   std::string_view subjects,
                                                   bool test,
                                                   const FeatureSpec& spec) {
  return internal::ReadAll(ReadIdx(internal::PlainSource(images),
                                   internal::PlainSource(labels),
                                   internal::PlainSource(subjects), test, spec)
                               .get());
}

}  // namespace lethe::upload

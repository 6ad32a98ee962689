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
  std::string_view data;       // after the header
  size_t data_offset = 0;      // header size, for byte offsets in errors
};

absl::Status PartError(std::string_view part, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Absl(part), ": ", Absl(what)));
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
absl::StatusOr<IdxFile> ReadIdx(std::string_view bytes, std::string_view part,
                                std::string_view magic, uint8_t dims) {
  if (bytes.size() < 4) {
    return PartError(part, absl::StrCat("only ", bytes.size(),
                                        " bytes; an IDX file starts with the "
                                        "4-byte magic number ",
                                        Absl(magic)));
  }
  auto byte = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
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
  if (bytes.size() < file.data_offset) {
    return PartError(part, absl::StrCat("truncated header: ", ndims,
                                        " dimensions need ", file.data_offset,
                                        " bytes, the file has ", bytes.size()));
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
  file.data = bytes.substr(file.data_offset);
  return file;
}

// Checks that `file` holds exactly dims[0] records of record_size bytes.
absl::Status CheckSize(const IdxFile& file, std::string_view part,
                       std::string_view noun) {
  const uint64_t want = uint64_t{file.dims[0]} * file.record_size;
  const uint64_t have = file.data.size();
  if (have < want) {
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
  if (have > want) {
    return PartError(
        part,
        absl::StrCat(have - want, " unexpected bytes at byte offset ",
                     file.data_offset + want, " after the last of the ",
                     file.dims[0], " ", Absl(noun),
                     "s the header declares; upload an unmodified IDX file"));
  }
  return absl::OkStatus();
}

std::string Dims(const std::vector<uint32_t>& dims) {
  return absl::StrJoin(dims.begin() + 1, dims.end(), "x");
}

}  // namespace

absl::StatusOr<std::vector<ParsedRecord>> ParseIdx(std::string_view images,
                                                   std::string_view labels,
                                                   std::string_view subjects,
                                                   bool test,
                                                   const FeatureSpec& spec) {
  if (absl::Status s = ValidateFeatureSpec(spec); !s.ok()) return s;
  if (spec.type != FeatureType::kUint8) {
    return absl::InvalidArgumentError(
        "IDX uploads need a dataset with feature type UINT8 (IDX images are "
        "bytes); this dataset is FLOAT32: upload CSV instead");
  }
  const int64_t elements = ElementCount(spec);
  absl::StatusOr<IdxFile> image_file =
      ReadIdx(images, "images", "0x00000803", 0);
  if (!image_file.ok()) return image_file.status();
  if (image_file->record_size != static_cast<uint64_t>(elements)) {
    return PartError(
        "images",
        absl::StrCat(
            "each image has ", image_file->record_size, " elements (",
            image_file->dims.size() == 1 ? "1" : Dims(image_file->dims),
            ") but the dataset's feature shape [",
            absl::StrJoin(spec.shape, ","), "] has ", elements,
            "; upload to a dataset whose shape matches"));
  }
  if (absl::Status s = CheckSize(*image_file, "images", "image"); !s.ok())
    return s;

  absl::StatusOr<IdxFile> label_file =
      ReadIdx(labels, "labels", "0x00000801", 1);
  if (!label_file.ok()) return label_file.status();
  if (absl::Status s = CheckSize(*label_file, "labels", "label"); !s.ok())
    return s;
  const size_t n = image_file->dims[0];
  if (label_file->dims[0] != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("the images file holds ", n,
                     " records but the labels file holds ", label_file->dims[0],
                     "; upload the labels that belong to these images"));
  }

  std::vector<ParsedRecord> records(n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t label = static_cast<uint8_t>(label_file->data[i]);
    if (label >= spec.num_classes) {
      return PartError(
          "labels", absl::StrCat("record ", i, " (byte offset ",
                                 label_file->data_offset + i, ") has label ",
                                 label, "; the dataset has ", spec.num_classes,
                                 " classes, labels 0..", spec.num_classes - 1));
    }
    records[i].label = label;
    records[i].test = test;
    records[i].features.assign(image_file->data.substr(i * elements, elements));
  }

  internal::LineReader lines(internal::SkipBom(subjects));
  std::string_view line;
  while (lines.Next(&line)) {
    const int64_t number = lines.line_number();
    if (static_cast<size_t>(number) > n) break;
    if (absl::Status st = server::CheckSubjectId(line); !st.ok()) {
      return PartError("subjects",
                       absl::StrCat("line ", number, ": ", st.message()));
    }
    records[number - 1].subject_id.assign(line);
  }
  const size_t lines_total = internal::CountLines(internal::SkipBom(subjects));
  if (lines_total != n) {
    return PartError(
        "subjects",
        absl::StrCat(lines_total, " lines but the images file holds ", n,
                     " records; give exactly one subject id per line, one line "
                     "per record, "
                     "in record order"));
  }
  return records;
}

}  // namespace lethe::upload

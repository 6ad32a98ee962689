#include "lethe/core/dataset_io.h"

#include <zlib.h>

#include <charconv>
#include <fstream>
#include <sstream>

namespace lethe::core {
namespace {

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::string> Gunzip(const std::string& gz, const std::string& path) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    return InternalError("zlib inflateInit2 failed");
  }
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    return InvalidArgumentError("'" + path +
                                "' is not valid gzip (truncated "
                                "or corrupt)");
  }
  return out;
}

std::vector<std::string_view> SplitCommas(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' '))
    s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

template <typename T>
bool ParseNumber(std::string_view s, T& out) {
  s = Trim(s);
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
}

Status CsvError(int64_t line, const std::string& what) {
  return InvalidArgumentError("CSV line " + std::to_string(line) + ": " + what);
}

}  // namespace

Result<std::string> ReadFileMaybeGzip(const std::string& path) {
  Result<std::string> read = ReadWholeFile(path);
  if (!read.ok()) return read.status();
  std::string& bytes = read.value();
  if (bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x1f &&
      static_cast<uint8_t>(bytes[1]) == 0x8b) {
    return Gunzip(bytes, path);
  }
  return std::move(bytes);
}

Result<Dataset> ParseCsvDataset(const std::string& text,
                                const FeatureSpec& spec) {
  LETHE_CORE_RETURN_IF_ERROR(spec.Validate());
  std::istringstream in(text);
  std::string line;
  const size_t k = static_cast<size_t>(spec.NumFeatures());
  if (!std::getline(in, line)) return CsvError(1, "empty file, no header");
  std::vector<std::string_view> head = SplitCommas(Trim(line));
  if (head.size() != k + 3 || Trim(head[0]) != "subject_id" ||
      Trim(head[1]) != "label" || Trim(head[2]) != "split") {
    return CsvError(1, "header must be subject_id,label,split,f0..f" +
                           std::to_string(k - 1) + " (" + std::to_string(k) +
                           " features for " + spec.ToString() + ")");
  }
  DatasetBuilder builder(spec);
  std::vector<float> values(k);
  int64_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (Trim(line).empty()) continue;
    std::vector<std::string_view> cols = SplitCommas(Trim(line));
    if (cols.size() != k + 3) {
      return CsvError(line_no, std::to_string(cols.size()) +
                                   " columns, header has " +
                                   std::to_string(k + 3));
    }
    int64_t label = 0;
    if (!ParseNumber(cols[1], label)) {
      return CsvError(line_no,
                      "label '" + std::string(cols[1]) + "' is not an integer");
    }
    std::string_view split_name = Trim(cols[2]);
    Split split = Split::kTrain;
    if (split_name == "test") {
      split = Split::kTest;
    } else if (split_name != "train") {
      return CsvError(line_no, "split '" + std::string(split_name) +
                                   "' must be train or test");
    }
    for (size_t j = 0; j < k; ++j) {
      if (!ParseNumber(cols[j + 3], values[j])) {
        return CsvError(line_no, "feature f" + std::to_string(j) + " '" +
                                     std::string(cols[j + 3]) +
                                     "' is not a number");
      }
    }
    Status st =
        builder.AddValues(builder.size(), Trim(cols[0]), label, split, values);
    if (!st.ok()) return CsvError(line_no, st.message());
  }
  return std::move(builder).Build();
}

Result<Dataset> ReadCsvDataset(const std::string& path,
                               const FeatureSpec& spec) {
  LETHE_CORE_ASSIGN_OR_RETURN(std::string text, ReadFileMaybeGzip(path));
  Result<Dataset> r = ParseCsvDataset(text, spec);
  if (!r.ok()) {
    return Status(r.status().code(), path + ": " + r.status().message());
  }
  return r;
}

Result<IdxArray> ParseIdx(const std::string& bytes) {
  auto u8 = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  if (bytes.size() < 4 || u8(0) != 0 || u8(1) != 0) {
    return InvalidArgumentError("not an IDX file (bad magic)");
  }
  if (u8(2) != 0x08) {
    return InvalidArgumentError("IDX element type " + std::to_string(u8(2)) +
                                " not supported (only unsigned byte, 0x08)");
  }
  int ndims = u8(3);
  size_t header = 4 + 4 * static_cast<size_t>(ndims);
  if (ndims == 0 || bytes.size() < header) {
    return InvalidArgumentError("IDX header truncated");
  }
  IdxArray out;
  uint64_t total = 1;
  for (int d = 0; d < ndims; ++d) {
    size_t o = 4 + 4 * static_cast<size_t>(d);
    int64_t dim = int64_t{u8(o)} << 24 | int64_t{u8(o + 1)} << 16 |
                  int64_t{u8(o + 2)} << 8 | int64_t{u8(o + 3)};
    out.dims.push_back(dim);
    total *= static_cast<uint64_t>(dim);
  }
  if (bytes.size() - header != total) {
    return InvalidArgumentError("IDX payload is " +
                                std::to_string(bytes.size() - header) +
                                " bytes, dims say " + std::to_string(total));
  }
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header),
                  bytes.end());
  return out;
}

Result<IdxArray> ReadIdx(const std::string& path) {
  LETHE_CORE_ASSIGN_OR_RETURN(std::string bytes, ReadFileMaybeGzip(path));
  Result<IdxArray> r = ParseIdx(bytes);
  if (!r.ok()) {
    return Status(r.status().code(), path + ": " + r.status().message());
  }
  return r;
}

Result<Dataset> LoadIdxDataset(const std::vector<IdxSource>& sources,
                               int64_t num_classes,
                               const SubjectAssignment& subjects) {
  if (sources.empty()) return InvalidArgumentError("no IDX sources");
  if (subjects.keys.empty() && subjects.block_size <= 0) {
    return InvalidArgumentError("subject block_size must be positive");
  }
  std::vector<IdxArray> images, labels;
  int64_t total = 0;
  for (const IdxSource& src : sources) {
    LETHE_CORE_ASSIGN_OR_RETURN(IdxArray im, ReadIdx(src.images_path));
    LETHE_CORE_ASSIGN_OR_RETURN(IdxArray lb, ReadIdx(src.labels_path));
    if (lb.dims.size() != 1 || im.dims[0] != lb.dims[0]) {
      return InvalidArgumentError("'" + src.labels_path +
                                  "' does not hold one label per image of '" +
                                  src.images_path + "'");
    }
    int64_t n = im.dims[0];
    if (src.max_records >= 0 && src.max_records < n) n = src.max_records;
    total += n;
    images.push_back(std::move(im));
    labels.push_back(std::move(lb));
  }
  if (!subjects.keys.empty() &&
      static_cast<int64_t>(subjects.keys.size()) != total) {
    return InvalidArgumentError(std::to_string(subjects.keys.size()) +
                                " subject keys for " + std::to_string(total) +
                                " records");
  }
  FeatureSpec spec;
  spec.type = FeatureType::kUint8;
  spec.num_classes = num_classes;
  spec.shape.assign(images[0].dims.begin() + 1, images[0].dims.end());
  if (spec.shape.size() == 2) spec.shape.insert(spec.shape.begin(), 1);
  DatasetBuilder builder(spec);
  int64_t id = 0;
  for (size_t s = 0; s < sources.size(); ++s) {
    if (images[s].dims.size() != images[0].dims.size() ||
        !std::equal(images[s].dims.begin() + 1, images[s].dims.end(),
                    images[0].dims.begin() + 1)) {
      return InvalidArgumentError("IDX sources have different image shapes");
    }
    int64_t n = images[s].dims[0];
    if (sources[s].max_records >= 0 && sources[s].max_records < n) {
      n = sources[s].max_records;
    }
    size_t row = spec.RowBytes();
    const char* prefix = sources[s].split == Split::kTrain ? "train-" : "test-";
    for (int64_t i = 0; i < n; ++i, ++id) {
      std::string key = subjects.keys.empty()
                            ? prefix + std::to_string(i / subjects.block_size)
                            : subjects.keys[static_cast<size_t>(id)];
      std::string_view raw(
          reinterpret_cast<const char*>(images[s].data.data()) + i * row, row);
      LETHE_CORE_RETURN_IF_ERROR(
          builder.Add(id, key, labels[s].data[i], sources[s].split, raw));
    }
  }
  return std::move(builder).Build();
}

}  // namespace lethe::core

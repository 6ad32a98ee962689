#include "lethe/core/dataset.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "lethe/core/wire.h"

namespace lethe::core {

struct Dataset::Rep {
  FeatureSpec spec;
  at::Tensor features;
  at::Tensor labels;
  std::vector<Split> splits;
  std::vector<int64_t> record_ids;
  std::vector<int32_t> subject_index;
  std::vector<std::string> subjects;
};

int64_t FeatureSpec::NumFeatures() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t FeatureSpec::RowBytes() const {
  return static_cast<size_t>(NumFeatures()) *
         (type == FeatureType::kUint8 ? 1 : 4);
}

Status FeatureSpec::Validate() const {
  if (shape.empty()) return InvalidArgumentError("feature shape is empty");
  for (int64_t d : shape) {
    if (d <= 0) {
      return InvalidArgumentError("feature shape " + ToString() +
                                  " has a non-positive dimension");
    }
  }
  if (num_classes < 2) {
    return InvalidArgumentError("num_classes must be at least 2, got " +
                                std::to_string(num_classes));
  }
  return OkStatus();
}

std::string FeatureSpec::ToString() const {
  std::string s = type == FeatureType::kUint8 ? "uint8[" : "float32[";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? "," : "") + std::to_string(shape[i]);
  }
  return s + "] -> " + std::to_string(num_classes) + " classes";
}

namespace {
const FeatureSpec kEmptySpec;
const at::Tensor kEmptyTensor;
const std::vector<Split> kNoSplits;
const std::vector<int64_t> kNoIds;
const std::vector<int32_t> kNoIndex;
const std::vector<std::string> kNoSubjects;
}  // namespace

int64_t Dataset::size() const {
  return rep_ ? static_cast<int64_t>(rep_->splits.size()) : 0;
}
const FeatureSpec& Dataset::spec() const {
  return rep_ ? rep_->spec : kEmptySpec;
}
const at::Tensor& Dataset::features() const {
  return rep_ ? rep_->features : kEmptyTensor;
}
const at::Tensor& Dataset::labels() const {
  return rep_ ? rep_->labels : kEmptyTensor;
}
const std::vector<Split>& Dataset::splits() const {
  return rep_ ? rep_->splits : kNoSplits;
}
const std::vector<int64_t>& Dataset::record_ids() const {
  return rep_ ? rep_->record_ids : kNoIds;
}
const std::vector<int32_t>& Dataset::subject_index() const {
  return rep_ ? rep_->subject_index : kNoIndex;
}
const std::vector<std::string>& Dataset::subjects() const {
  return rep_ ? rep_->subjects : kNoSubjects;
}

at::Tensor AsModelInput(const at::Tensor& stored_rows) {
  if (stored_rows.scalar_type() != at::kByte) return stored_rows;
  return stored_rows.to(at::kFloat).mul_(1.0f / 255.0f);
}

struct DatasetBuilder::State {
  FeatureSpec spec;
  size_t row_bytes = 0;
  // Features as they arrive (RowBytes() a record), adopted by the tensor.
  std::vector<uint8_t> features;
  std::vector<int64_t> labels;
  std::vector<Split> splits;
  std::vector<int64_t> record_ids;
  std::vector<int32_t> subject_index;
  std::vector<std::string> subjects;
  std::unordered_map<std::string, int32_t> subject_ids;
  // Ids arrive ascending from storage and from the encoding: a set of
  // every id is built only once one arrives out of order.
  std::unordered_set<int64_t> seen_ids;
  bool ascending = true;
};

DatasetBuilder::DatasetBuilder(FeatureSpec spec)
    : state_(std::make_unique<State>()) {
  state_->spec = std::move(spec);
  state_->row_bytes = state_->spec.RowBytes();
}

DatasetBuilder::~DatasetBuilder() = default;

int64_t DatasetBuilder::size() const {
  return static_cast<int64_t>(state_->labels.size());
}

Status DatasetBuilder::Reserve(int64_t records) {
  State& s = *state_;
  if (records <= 0) return OkStatus();
  const auto more = static_cast<size_t>(records);
  const size_t n = s.labels.size() + more;
  try {
    s.features.reserve(n * s.row_bytes);
    s.labels.reserve(n);
    s.splits.reserve(n);
    s.record_ids.reserve(n);
    s.subject_index.reserve(n);
  } catch (const std::exception& e) {
    return ResourceExhaustedError("reserving room for " +
                                  std::to_string(records) +
                                  " records: " + e.what());
  }
  return OkStatus();
}

namespace {

Status CheckRow(const FeatureSpec& spec, int64_t record_id,
                std::string_view subject, int64_t label) {
  if (subject.empty()) {
    return InvalidArgumentError("record " + std::to_string(record_id) +
                                ": empty subject key");
  }
  if (label < 0 || label >= spec.num_classes) {
    return InvalidArgumentError("record " + std::to_string(record_id) +
                                ": label " + std::to_string(label) +
                                " outside [0, " +
                                std::to_string(spec.num_classes) + ")");
  }
  return OkStatus();
}

// Length, label, subject and (float32) finiteness: what every row needs.
Status CheckRaw(const FeatureSpec& spec, int64_t record_id,
                std::string_view subject, int64_t label, std::string_view raw) {
  LETHE_CORE_RETURN_IF_ERROR(CheckRow(spec, record_id, subject, label));
  if (raw.size() != spec.RowBytes()) {
    return InvalidArgumentError("record " + std::to_string(record_id) + ": " +
                                std::to_string(raw.size()) +
                                " feature bytes, spec " + spec.ToString() +
                                " needs " + std::to_string(spec.RowBytes()));
  }
  if (spec.type == FeatureType::kFloat32) {
    for (size_t i = 0; i < raw.size(); i += 4) {
      float v = 0;
      std::memcpy(&v, raw.data() + i, 4);
      if (!std::isfinite(v)) {
        return InvalidArgumentError("record " + std::to_string(record_id) +
                                    ": feature value out of range");
      }
    }
  }
  return OkStatus();
}

}  // namespace

Status DatasetBuilder::AddValues(int64_t record_id,
                                 std::string_view subject_key, int64_t label,
                                 Split split, std::span<const float> values) {
  const FeatureSpec& spec = state_->spec;
  if (static_cast<int64_t>(values.size()) != spec.NumFeatures()) {
    LETHE_CORE_RETURN_IF_ERROR(CheckRow(spec, record_id, subject_key, label));
    return InvalidArgumentError("record " + std::to_string(record_id) + ": " +
                                std::to_string(values.size()) +
                                " feature values, spec " + spec.ToString() +
                                " needs " + std::to_string(spec.NumFeatures()));
  }
  std::string raw(spec.RowBytes(), '\0');
  if (spec.type == FeatureType::kUint8) {
    for (size_t i = 0; i < values.size(); ++i) {
      const float v = values[i];
      if (!(v >= 0 && v <= 255) || v != std::floor(v)) {
        return InvalidArgumentError(
            "record " + std::to_string(record_id) +
            ": feature value out of range (uint8 features are the "
            "integers 0..255)");
      }
      raw[i] = static_cast<char>(static_cast<uint8_t>(v));
    }
  } else {
    std::memcpy(raw.data(), values.data(), raw.size());
  }
  return Add(record_id, subject_key, label, split, raw);
}

Status DatasetBuilder::Add(int64_t record_id, std::string_view subject_key,
                           int64_t label, Split split, std::string_view raw) {
  State& s = *state_;
  LETHE_CORE_RETURN_IF_ERROR(
      CheckRaw(s.spec, record_id, subject_key, label, raw));
  if (s.ascending && !s.record_ids.empty() &&
      record_id <= s.record_ids.back()) {
    s.seen_ids.insert(s.record_ids.begin(), s.record_ids.end());
    s.ascending = false;
  }
  if (!s.ascending) {
    if (s.seen_ids.count(record_id)) {
      return InvalidArgumentError("duplicate record id " +
                                  std::to_string(record_id));
    }
    s.seen_ids.insert(record_id);
  }
  s.features.insert(s.features.end(), raw.begin(), raw.end());
  auto [it, inserted] = s.subject_ids.emplace(
      std::string(subject_key), static_cast<int32_t>(s.subjects.size()));
  if (inserted) s.subjects.emplace_back(subject_key);
  s.subject_index.push_back(it->second);
  s.labels.push_back(label);
  s.splits.push_back(split);
  s.record_ids.push_back(record_id);
  return OkStatus();
}

namespace {

// A tensor over the vector's buffer, which it then owns: no copy.
template <typename T>
at::Tensor Adopt(std::vector<T>&& v, std::vector<int64_t> sizes,
                 at::ScalarType type) {
  auto* owned = new std::vector<T>(std::move(v));
  return at::from_blob(
      owned->data(), sizes, [owned](void*) { delete owned; },
      at::TensorOptions(type));
}

}  // namespace

Result<Dataset> DatasetBuilder::Build() && {
  State& s = *state_;
  LETHE_CORE_RETURN_IF_ERROR(s.spec.Validate());
  if (s.labels.empty()) return InvalidArgumentError("dataset has no records");
  auto rep = std::make_shared<Dataset::Rep>();
  rep->spec = s.spec;
  const auto n = static_cast<int64_t>(s.labels.size());
  std::vector<int64_t> sizes{n};
  sizes.insert(sizes.end(), s.spec.shape.begin(), s.spec.shape.end());
  try {
    // Float32 rows were appended as their bytes; the buffer is
    // malloc-aligned, so it is read as floats in place.
    rep->features =
        Adopt(std::move(s.features), sizes,
              s.spec.type == FeatureType::kUint8 ? at::kByte : at::kFloat);
    rep->labels = Adopt(std::move(s.labels), {n}, at::kLong);
  } catch (const std::exception& e) {
    return ResourceExhaustedError(std::string("building dataset: ") + e.what());
  }
  rep->splits = std::move(s.splits);
  rep->record_ids = std::move(s.record_ids);
  rep->subject_index = std::move(s.subject_index);
  rep->subjects = std::move(s.subjects);
  return Dataset(std::move(rep));
}

Result<Partition> PartitionBySubjects(const Dataset& data,
                                      const std::vector<std::string>& keys) {
  std::unordered_set<std::string> wanted(keys.begin(), keys.end());
  std::vector<char> forgotten(data.subjects().size(), 0);
  std::vector<char> validation(data.subjects().size(), 0);
  for (size_t i = 0; i < data.subjects().size(); ++i) {
    forgotten[i] = wanted.count(data.subjects()[i]) ? 1 : 0;
    validation[i] = IsValidationSubject(data.subjects()[i]) ? 1 : 0;
  }
  Partition p;
  for (int64_t i = 0; i < data.size(); ++i) {
    const int32_t subject = data.subject_index()[i];
    if (data.splits()[i] == Split::kTest) {
      (validation[subject] && !forgotten[subject] ? p.validation : p.test)
          .push_back(i);
    } else if (forgotten[subject]) {
      p.forget.push_back(i);
    } else {
      p.retain.push_back(i);
    }
  }
  if (p.forget.empty()) {
    return NotFoundError("none of the " + std::to_string(keys.size()) +
                         " subjects to forget has a training record");
  }
  return p;
}

bool IsValidationSubject(std::string_view subject_key) {
  // FNV-1a, 64 bits, then MurmurHash3's finaliser: stable across machines
  // and releases (std::hash is not). FNV alone leaves keys that differ in
  // their last characters ("test-1", "test-2") equal in most bits.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : subject_key) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return (h & 1) == 0;
}

std::vector<int64_t> IndicesOfSplit(const Dataset& data, Split split) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < data.size(); ++i) {
    if (data.splits()[i] == split) out.push_back(i);
  }
  return out;
}

namespace {

constexpr std::string_view kDatasetMagic = "LETHE-DATASET-2";
// A record's fixed part: id, subject index, label, split.
constexpr size_t kRecordHead = 32;
// Records decoded per read from a stream.
constexpr size_t kDecodeBlock = 1024;

void PutRecordHead(WireWriter& w, int64_t id, uint64_t subject, int64_t label,
                   Split split) {
  w.PutI64(id);
  w.PutU64(subject);
  w.PutI64(label);
  w.PutU64(static_cast<uint64_t>(split));
}

std::string EncodeHeader(const FeatureSpec& spec,
                         const std::vector<std::string>& subjects, int64_t n) {
  WireWriter h;
  h.PutI64s(spec.shape);
  h.PutU64(static_cast<uint64_t>(spec.type));
  h.PutI64(spec.num_classes);
  h.PutStrings(subjects);
  h.PutI64(n);
  WireWriter w;
  w.PutRaw(kDatasetMagic);
  w.PutBytes(h.str());
  return std::move(w.str());
}

Status BadEncoding(const std::string& what) {
  return InvalidArgumentError("dataset encoding: " + what);
}

// Reads exactly `n` bytes; false at a premature end.
Result<bool> ReadExactly(const ByteReader& read, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    Result<size_t> r = read(buf + got, n - got);
    if (!r.ok()) return r.status();
    if (r.value() == 0) return false;
    got += r.value();
  }
  return true;
}

struct Header {
  FeatureSpec spec;
  std::vector<std::string> subjects;
  int64_t count = 0;
};

Result<Header> ParseHeader(std::string_view bytes) {
  WireReader r(bytes);
  Header h;
  uint64_t type = 0;
  if (!r.GetI64s(&h.spec.shape) || !r.GetU64(&type) ||
      !r.GetI64(&h.spec.num_classes) || !r.GetStrings(&h.subjects) ||
      !r.GetI64(&h.count) || !r.done()) {
    return BadEncoding("malformed header");
  }
  if (type > 1) return BadEncoding("unknown feature type");
  h.spec.type = static_cast<FeatureType>(type);
  LETHE_CORE_RETURN_IF_ERROR(h.spec.Validate());
  if (h.count < 0) return BadEncoding("negative record count");
  return h;
}

// Decodes `count` whole records from `block` into `builder`.
Status DecodeRecords(std::string_view block, const Header& h,
                     DatasetBuilder& builder) {
  WireReader r(block);
  const size_t row_bytes = h.spec.RowBytes();
  while (!r.done()) {
    int64_t id = 0;
    uint64_t subject = 0;
    int64_t label = 0;
    uint64_t split = 0;
    std::string_view raw;
    if (!r.GetI64(&id) || !r.GetU64(&subject) || !r.GetI64(&label) ||
        !r.GetU64(&split) || !r.GetRaw(row_bytes, &raw)) {
      return BadEncoding("truncated record");
    }
    if (subject >= h.subjects.size() || split > 1) {
      return BadEncoding("record " + std::to_string(id) +
                         ": bad subject or split");
    }
    LETHE_CORE_RETURN_IF_ERROR(builder.Add(id, h.subjects[subject], label,
                                           static_cast<Split>(split), raw));
  }
  return OkStatus();
}

}  // namespace

DatasetEncoder::DatasetEncoder(FeatureSpec spec) : spec_(std::move(spec)) {}

size_t DatasetEncoder::RecordBytes() const {
  return kRecordHead + spec_.RowBytes();
}

Status DatasetEncoder::AddRecord(int64_t record_id,
                                 std::string_view subject_key, int64_t label,
                                 Split split, std::string_view raw,
                                 std::string& out) {
  LETHE_CORE_RETURN_IF_ERROR(
      CheckRaw(spec_, record_id, subject_key, label, raw));
  auto [it, inserted] =
      subject_ids_.emplace(std::string(subject_key), subjects_.size());
  if (inserted) subjects_.emplace_back(subject_key);
  WireWriter w;
  PutRecordHead(w, record_id, it->second, label, split);
  out.append(w.str());
  out.append(raw);
  ++count_;
  return OkStatus();
}

std::string DatasetEncoder::Header() const {
  return EncodeHeader(spec_, subjects_, count_);
}

std::string EncodeDataset(const Dataset& data) {
  const FeatureSpec& spec = data.spec();
  const int64_t n = data.size();
  std::string out = EncodeHeader(spec, data.subjects(), n);
  if (n == 0) return out;
  out.reserve(out.size() +
              static_cast<size_t>(n) * (kRecordHead + spec.RowBytes()));
  const at::Tensor features = data.features().contiguous();
  const auto* f = static_cast<const char*>(features.data_ptr());
  const int64_t* y = data.labels().contiguous().data_ptr<int64_t>();
  const size_t row = spec.RowBytes();
  WireWriter w;
  for (int64_t i = 0; i < n; ++i) {
    w.str().clear();
    PutRecordHead(w, data.record_ids()[i],
                  static_cast<uint64_t>(data.subject_index()[i]), y[i],
                  data.splits()[i]);
    out.append(w.str());
    out.append(f + static_cast<size_t>(i) * row, row);
  }
  return out;
}

Result<Dataset> DecodeDataset(const ByteReader& read, int64_t max_bytes) {
  // What the header says must fit in what is left of a bounded input, so
  // that nothing is allocated for a length the input cannot hold.
  auto fits = [&max_bytes](uint64_t n) {
    if (max_bytes < 0) return true;
    if (n > static_cast<uint64_t>(max_bytes)) return false;
    max_bytes -= static_cast<int64_t>(n);
    return true;
  };
  std::string head(kDatasetMagic.size() + 8, '\0');
  Result<bool> got = ReadExactly(read, head.data(), head.size());
  if (!got.ok()) return got.status();
  if (!got.value() ||
      std::string_view(head).substr(0, kDatasetMagic.size()) != kDatasetMagic) {
    return BadEncoding("wrong magic");
  }
  uint64_t header_len = 0;
  WireReader(std::string_view(head).substr(kDatasetMagic.size()))
      .GetU64(&header_len);
  if (!fits(head.size()) || !fits(header_len)) {
    return BadEncoding("truncated header");
  }
  std::string header_bytes(header_len, '\0');
  got = ReadExactly(read, header_bytes.data(), header_bytes.size());
  if (!got.ok()) return got.status();
  if (!got.value()) return BadEncoding("truncated header");
  Result<Header> h = ParseHeader(header_bytes);
  if (!h.ok()) return h.status();
  header_bytes = std::string();
  const size_t record = kRecordHead + h->spec.RowBytes();
  if (static_cast<uint64_t>(h->count) > (uint64_t{1} << 62) / record ||
      !fits(static_cast<uint64_t>(h->count) * record)) {
    return BadEncoding("record count larger than the input");
  }
  DatasetBuilder builder(h->spec);
  LETHE_CORE_RETURN_IF_ERROR(builder.Reserve(h->count));
  std::string block;
  for (int64_t done = 0; done < h->count;) {
    const int64_t take =
        std::min<int64_t>(h->count - done, static_cast<int64_t>(kDecodeBlock));
    block.resize(static_cast<size_t>(take) * record);
    got = ReadExactly(read, block.data(), block.size());
    if (!got.ok()) return got.status();
    if (!got.value()) return BadEncoding("truncated record");
    LETHE_CORE_RETURN_IF_ERROR(DecodeRecords(block, *h, builder));
    done += take;
  }
  char extra = 0;
  Result<size_t> tail = read(&extra, 1);
  if (!tail.ok()) return tail.status();
  if (tail.value() != 0) return BadEncoding("trailing bytes");
  return std::move(builder).Build();
}

Result<Dataset> DecodeDataset(std::string_view bytes) {
  const auto size = static_cast<int64_t>(bytes.size());
  return DecodeDataset(
      [&bytes](char* buf, size_t max) -> Result<size_t> {
        const size_t n = std::min(max, bytes.size());
        std::memcpy(buf, bytes.data(), n);
        bytes.remove_prefix(n);
        return n;
      },
      size);
}

}  // namespace lethe::core

#include "lethe/core/dataset.h"

#include <ATen/ATen.h>

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

struct DatasetBuilder::State {
  FeatureSpec spec;
  std::vector<float> features;
  std::vector<int64_t> labels;
  std::vector<Split> splits;
  std::vector<int64_t> record_ids;
  std::vector<int32_t> subject_index;
  std::vector<std::string> subjects;
  std::unordered_map<std::string, int32_t> subject_ids;
  std::unordered_set<int64_t> seen_ids;
};

DatasetBuilder::DatasetBuilder(FeatureSpec spec)
    : state_(std::make_unique<State>()) {
  state_->spec = std::move(spec);
}

DatasetBuilder::~DatasetBuilder() = default;

int64_t DatasetBuilder::size() const {
  return static_cast<int64_t>(state_->labels.size());
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

}  // namespace

Status DatasetBuilder::AddValues(int64_t record_id,
                                 std::string_view subject_key, int64_t label,
                                 Split split, std::span<const float> values) {
  State& s = *state_;
  LETHE_CORE_RETURN_IF_ERROR(CheckRow(s.spec, record_id, subject_key, label));
  if (static_cast<int64_t>(values.size()) != s.spec.NumFeatures()) {
    return InvalidArgumentError(
        "record " + std::to_string(record_id) + ": " +
        std::to_string(values.size()) + " feature values, spec " +
        s.spec.ToString() + " needs " + std::to_string(s.spec.NumFeatures()));
  }
  bool u8 = s.spec.type == FeatureType::kUint8;
  for (float v : values) {
    if (!std::isfinite(v) || (u8 && (v < 0 || v > 255))) {
      return InvalidArgumentError("record " + std::to_string(record_id) +
                                  ": feature value out of range");
    }
  }
  if (s.seen_ids.count(record_id)) {
    return InvalidArgumentError("duplicate record id " +
                                std::to_string(record_id));
  }
  s.seen_ids.insert(record_id);
  float scale = u8 ? 1.0f / 255.0f : 1.0f;
  for (float v : values) s.features.push_back(v * scale);
  auto [it, inserted] = s.subject_ids.emplace(
      std::string(subject_key), static_cast<int32_t>(s.subjects.size()));
  if (inserted) s.subjects.emplace_back(subject_key);
  s.subject_index.push_back(it->second);
  s.labels.push_back(label);
  s.splits.push_back(split);
  s.record_ids.push_back(record_id);
  return OkStatus();
}

Status DatasetBuilder::Add(int64_t record_id, std::string_view subject_key,
                           int64_t label, Split split, std::string_view raw) {
  const FeatureSpec& spec = state_->spec;
  if (raw.size() != spec.RowBytes()) {
    return InvalidArgumentError("record " + std::to_string(record_id) + ": " +
                                std::to_string(raw.size()) +
                                " feature bytes, spec " + spec.ToString() +
                                " needs " + std::to_string(spec.RowBytes()));
  }
  std::vector<float> values(static_cast<size_t>(spec.NumFeatures()));
  if (spec.type == FeatureType::kUint8) {
    for (size_t i = 0; i < values.size(); ++i) {
      values[i] = static_cast<uint8_t>(raw[i]);
    }
  } else {
    std::memcpy(values.data(), raw.data(), raw.size());
  }
  return AddValues(record_id, subject_key, label, split, values);
}

Result<Dataset> DatasetBuilder::Build() && {
  State& s = *state_;
  LETHE_CORE_RETURN_IF_ERROR(s.spec.Validate());
  if (s.labels.empty()) return InvalidArgumentError("dataset has no records");
  auto rep = std::make_shared<Dataset::Rep>();
  rep->spec = s.spec;
  std::vector<int64_t> sizes{static_cast<int64_t>(s.labels.size())};
  sizes.insert(sizes.end(), s.spec.shape.begin(), s.spec.shape.end());
  try {
    // Adopt the vector's buffer rather than copying it: one copy in memory.
    auto* owned = new std::vector<float>(std::move(s.features));
    rep->features = at::from_blob(
        owned->data(), sizes, [owned](void*) { delete owned; },
        at::TensorOptions(at::kFloat));
    rep->labels = at::tensor(s.labels, at::TensorOptions(at::kLong));
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
  for (size_t i = 0; i < data.subjects().size(); ++i) {
    forgotten[i] = wanted.count(data.subjects()[i]) ? 1 : 0;
  }
  Partition p;
  for (int64_t i = 0; i < data.size(); ++i) {
    if (data.splits()[i] == Split::kTest) {
      p.test.push_back(i);
    } else if (forgotten[data.subject_index()[i]]) {
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

std::vector<int64_t> IndicesOfSplit(const Dataset& data, Split split) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < data.size(); ++i) {
    if (data.splits()[i] == split) out.push_back(i);
  }
  return out;
}

namespace {

constexpr std::string_view kDatasetMagic = "LETHE-DATASET-1";

}  // namespace

std::string EncodeDataset(const Dataset& data) {
  WireWriter w;
  const FeatureSpec& spec = data.spec();
  const int64_t n = data.size();
  w.Reserve(64 + static_cast<size_t>(n) * (spec.RowBytes() + 40));
  w.PutRaw(kDatasetMagic);
  w.PutI64s(spec.shape);
  w.PutU64(static_cast<uint64_t>(spec.type));
  w.PutI64(spec.num_classes);
  w.PutStrings(data.subjects());
  w.PutI64(n);
  if (n == 0) return std::move(w.str());
  const at::Tensor features = data.features().contiguous().view({n, -1});
  const at::Tensor labels = data.labels().contiguous();
  const float* f = features.data_ptr<float>();
  const int64_t* y = labels.data_ptr<int64_t>();
  const int64_t k = spec.NumFeatures();
  const bool u8 = spec.type == FeatureType::kUint8;
  std::string row(spec.RowBytes(), '\0');
  for (int64_t i = 0; i < n; ++i) {
    w.PutI64(data.record_ids()[i]);
    w.PutU64(static_cast<uint64_t>(data.subject_index()[i]));
    w.PutI64(y[i]);
    w.PutU64(static_cast<uint64_t>(data.splits()[i]));
    const float* x = f + i * k;
    if (u8) {
      // Features are k / 255 in float32; k is recovered exactly.
      for (int64_t j = 0; j < k; ++j) {
        row[j] =
            static_cast<char>(static_cast<uint8_t>(std::lround(x[j] * 255.0f)));
      }
    } else {
      std::memcpy(row.data(), x, row.size());
    }
    w.PutRaw(row);
  }
  return std::move(w.str());
}

Result<Dataset> DecodeDataset(std::string_view bytes) {
  auto bad = [](const std::string& what) {
    return InvalidArgumentError("dataset encoding: " + what);
  };
  if (bytes.substr(0, kDatasetMagic.size()) != kDatasetMagic) {
    return bad("wrong magic");
  }
  WireReader r(bytes.substr(kDatasetMagic.size()));
  FeatureSpec spec;
  uint64_t type = 0;
  std::vector<std::string> subjects;
  int64_t n = 0;
  if (!r.GetI64s(&spec.shape) || !r.GetU64(&type) ||
      !r.GetI64(&spec.num_classes) || !r.GetStrings(&subjects) ||
      !r.GetI64(&n)) {
    return bad("truncated header");
  }
  if (type > 1) return bad("unknown feature type");
  spec.type = static_cast<FeatureType>(type);
  LETHE_CORE_RETURN_IF_ERROR(spec.Validate());
  const size_t row_bytes = spec.RowBytes();
  if (n < 0 || static_cast<uint64_t>(n) > r.remaining() / (32 + row_bytes)) {
    return bad("record count larger than the input");
  }
  DatasetBuilder builder(spec);
  for (int64_t i = 0; i < n; ++i) {
    int64_t id = 0;
    uint64_t subject = 0;
    int64_t label = 0;
    uint64_t split = 0;
    std::string_view raw;
    if (!r.GetI64(&id) || !r.GetU64(&subject) || !r.GetI64(&label) ||
        !r.GetU64(&split) || !r.GetRaw(row_bytes, &raw)) {
      return bad("truncated record");
    }
    if (subject >= subjects.size() || split > 1) {
      return bad("record " + std::to_string(id) + ": bad subject or split");
    }
    LETHE_CORE_RETURN_IF_ERROR(builder.Add(id, subjects[subject], label,
                                           static_cast<Split>(split), raw));
  }
  if (!r.done()) return bad("trailing bytes");
  return std::move(builder).Build();
}

}  // namespace lethe::core

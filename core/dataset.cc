#include "lethe/core/dataset.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

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

}  // namespace lethe::core

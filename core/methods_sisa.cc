#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "guard.h"
#include "lethe/core/model.h"
#include "lethe/core/sha256.h"
#include "lethe/core/sisa.h"

namespace lethe::core {
namespace {

using internal::Guarded;

constexpr char kMagicV1[] = "LETHE-SISA-1\n";
constexpr char kMagic[] = "LETHE-SISA-2\n";

class Writer {
 public:
  template <typename T>
  void Put(T v) {
    for (size_t i = 0; i < sizeof(T); ++i) {
      uint64_t bits = 0;
      std::memcpy(&bits, &v, sizeof(T));
      out_.push_back(static_cast<char>(bits >> (8 * i)));
    }
  }
  void Bytes(const std::string& s) {
    Put<uint64_t>(s.size());
    out_ += s;
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  bool Get(T& v) {
    if (in_.size() - pos_ < sizeof(T)) return false;
    uint64_t bits = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      bits |= uint64_t{static_cast<uint8_t>(in_[pos_ + i])} << (8 * i);
    }
    std::memcpy(&v, &bits, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Bytes(std::string& s) {
    uint64_t n = 0;
    if (!Get(n) || in_.size() - pos_ < n) return false;
    s.assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

uint64_t Mix(uint64_t a, uint64_t b) {  // splitmix64 of a combined key
  uint64_t z = a * 0x9e3779b97f4a7c15ULL + b + 0x632be59bd9b4e019ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t StageSeed(uint64_t seed, int shard, int stage) {
  return Mix(Mix(seed, static_cast<uint64_t>(shard) + 1),
             static_cast<uint64_t>(stage) + 1);
}

// Dataset rows of shard k with slice <= j, ordered by record id.
std::vector<int64_t> StageRows(
    const SisaState& s, const std::unordered_map<int64_t, int64_t>& row_of,
    int k, int j) {
  std::vector<int64_t> rows;
  for (size_t i = 0; i < s.record_ids.size(); ++i) {
    if (s.shard[i] == k && s.slice[i] <= j) {
      rows.push_back(row_of.at(s.record_ids[i]));
    }
  }
  return rows;
}

// Trains stages from..S-1 of shard k from `model`, storing checkpoints. Each
// stage restarts the recipe's schedule: one schedule over a shard's stages
// (by their step counts) would make every stage depend on the sizes of later
// slices, so a removal would change stages before it and forgetting could
// not start from a checkpoint; one by stage index measured 0.8 points worse
// than restarting (docs/benchmarks.md).
Status TrainStages(SisaState& s, torch::jit::Module model, const DeviceData& d,
                   const std::unordered_map<int64_t, int64_t>& row_of, int k,
                   int from, const TrainControl& control) {
  for (int j = from; j < s.params.slices; ++j) {
    std::vector<int64_t> rows = StageRows(s, row_of, k, j);
    if (!rows.empty()) {
      Recipe r = s.recipe;
      r.seed = StageSeed(s.recipe.seed, k, j);
      StepRange steps{SisaStageSteps(s.params, s.recipe,
                                     static_cast<int64_t>(rows.size()))};
      LETHE_CORE_RETURN_IF_ERROR(TrainModel(model, d, rows, r, control, steps));
    }
    LETHE_CORE_ASSIGN_OR_RETURN(s.checkpoints[k][j], SaveModel(model));
  }
  return OkStatus();
}

Result<torch::jit::Module> FreshShard(const SisaState& s, int k,
                                      at::Device device) {
  LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m,
                              LoadModel(s.template_bytes));
  LETHE_CORE_RETURN_IF_ERROR(
      ReinitializeModel(m, StageSeed(s.recipe.seed, k, -1)));
  return Guarded("moving shard", [&]() -> Result<torch::jit::Module> {
    m.to(device);
    return m;
  });
}

std::unordered_map<int64_t, int64_t> RowsById(const Dataset& d) {
  std::unordered_map<int64_t, int64_t> m;
  for (int64_t i = 0; i < d.size(); ++i) m.emplace(d.record_ids()[i], i);
  return m;
}

struct Assigned {
  int64_t id;
  uint16_t shard, slice;
  bool operator<(const Assigned& o) const { return id < o.id; }
};

SisaAssignment AssignRow(const SisaState& s, const Dataset& d, int64_t row) {
  const std::string& key = d.subjects()[d.subject_index()[row]];
  return AssignSubject(key, s.recipe.seed, s.params.shards, s.params.slices);
}

void SetRecords(SisaState& s, std::vector<Assigned> records) {
  std::sort(records.begin(), records.end());
  s.record_ids.clear();
  s.shard.clear();
  s.slice.clear();
  for (const Assigned& a : records) {
    s.record_ids.push_back(a.id);
    s.shard.push_back(a.shard);
    s.slice.push_back(a.slice);
  }
}

// Assigns the train-split records of `dataset` not in `skip` and trains every
// shard from scratch: TrainSisa, and the rebuild of a legacy state.
Status TrainAll(SisaState& s, const Dataset& dataset, const DeviceData& data,
                const std::unordered_set<int64_t>& skip,
                const TrainControl& control) {
  std::vector<Assigned> records;
  for (int64_t i = 0; i < dataset.size(); ++i) {
    const int64_t id = dataset.record_ids()[i];
    if (dataset.splits()[i] != Split::kTrain || skip.count(id)) continue;
    SisaAssignment a = AssignRow(s, dataset, i);
    records.push_back(
        {id, static_cast<uint16_t>(a.shard), static_cast<uint16_t>(a.slice)});
  }
  SetRecords(s, std::move(records));
  s.checkpoints.assign(s.params.shards,
                       std::vector<std::string>(s.params.slices));
  auto row_of = RowsById(dataset);
  for (int k = 0; k < s.params.shards; ++k) {
    LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module m,
                                FreshShard(s, k, data.device));
    LETHE_CORE_RETURN_IF_ERROR(TrainStages(s, m, data, row_of, k, 0, control));
  }
  return OkStatus();
}

void PutRecipe(Writer& w, const Recipe& r) {
  w.Put<uint8_t>(static_cast<uint8_t>(r.optimizer));
  w.Put<double>(r.lr);
  w.Put<double>(r.momentum);
  w.Put<double>(r.weight_decay);
  w.Put<int32_t>(r.epochs);
  w.Put<int32_t>(r.batch_size);
  w.Put<uint64_t>(r.seed);
  w.Put<uint8_t>(static_cast<uint8_t>(r.lr_schedule));
  w.Put<double>(r.warmup_fraction);
  w.Put<double>(r.max_grad_norm);
}

// v1 had neither warm-up nor clipping (TrainSisa refused a warm-up; clipping
// was dropped: issue 15).
bool GetRecipe(Reader& r, Recipe& out, bool v1) {
  uint8_t opt = 0, sched = 0;
  bool ok = r.Get(opt) && r.Get(out.lr) && r.Get(out.momentum) &&
            r.Get(out.weight_decay) && r.Get(out.epochs) &&
            r.Get(out.batch_size) && r.Get(out.seed) && r.Get(sched);
  if (!v1) ok = ok && r.Get(out.warmup_fraction) && r.Get(out.max_grad_norm);
  if (!ok || opt > 1 || sched > 1) return false;
  out.optimizer = static_cast<Optimizer>(opt);
  out.lr_schedule = static_cast<LrSchedule>(sched);
  return out.Validate().ok();
}

}  // namespace

SisaAssignment AssignSubject(std::string_view subject_key, uint64_t seed,
                             int shards, int slices) {
  std::string keyed = "lethe-sisa-v2:" + std::to_string(seed) + ":";
  keyed.append(subject_key);
  const Sha256Digest h = Sha256(keyed);
  uint64_t hi = 0, lo = 0;
  for (int i = 0; i < 8; ++i) {
    hi = hi << 8 | h[i];
    lo = lo << 8 | h[8 + i];
  }
  return {static_cast<int>(hi % static_cast<uint64_t>(shards)),
          static_cast<int>(lo % static_cast<uint64_t>(slices))};
}

int64_t SisaStageSteps(const SisaParams& params, const Recipe& recipe,
                       int64_t rows) {
  const int64_t per_epoch = (rows + recipe.batch_size - 1) / recipe.batch_size;
  const double epochs = 2.0 * recipe.epochs / (params.slices + 1);
  return std::max<int64_t>(
      1, std::llround(epochs * static_cast<double>(per_epoch)));
}

std::string SerializeSisaState(const SisaState& s) {
  Writer w;
  w.out() = kMagic;
  w.Put<uint8_t>(s.legacy ? 1 : 2);  // assignment and schedule scheme
  w.Put<int32_t>(s.params.shards);
  w.Put<int32_t>(s.params.slices);
  PutRecipe(w, s.recipe);
  w.Bytes(s.template_bytes);
  w.Put<uint64_t>(s.record_ids.size());
  for (size_t i = 0; i < s.record_ids.size(); ++i) {
    w.Put<int64_t>(s.record_ids[i]);
    w.Put<uint16_t>(s.shard[i]);
    w.Put<uint16_t>(s.slice[i]);
  }
  for (const auto& shard : s.checkpoints) {
    for (const std::string& c : shard) w.Bytes(c);
  }
  Sha256Digest digest = Sha256(w.out());
  w.out().append(reinterpret_cast<const char*>(digest.data()), digest.size());
  return std::move(w.out());
}

Result<SisaState> ParseSisaState(std::string_view bytes) {
  const size_t magic_len = sizeof(kMagic) - 1;
  static_assert(sizeof(kMagic) == sizeof(kMagicV1));
  const bool v1 = bytes.substr(0, magic_len) == kMagicV1;
  if (bytes.size() < magic_len + 32 ||
      (!v1 && bytes.substr(0, magic_len) != kMagic)) {
    return InvalidArgumentError("not a lethe SISA state (bad magic)");
  }
  std::string_view body = bytes.substr(0, bytes.size() - 32);
  if (ToHex(Sha256(body)) != ToHex(*reinterpret_cast<const Sha256Digest*>(
                                 bytes.data() + body.size()))) {
    return InvalidArgumentError("SISA state is corrupt (checksum mismatch)");
  }
  Reader r(body.substr(magic_len));
  SisaState s;
  uint8_t scheme = 1;
  uint64_t count = 0;
  bool ok = (v1 || r.Get(scheme)) && r.Get(s.params.shards) &&
            r.Get(s.params.slices) && GetRecipe(r, s.recipe, v1) &&
            r.Bytes(s.template_bytes) && r.Get(count);
  if (!ok || (scheme != 1 && scheme != 2) || s.params.shards <= 0 ||
      s.params.slices <= 0 || count > body.size()) {
    return InvalidArgumentError("SISA state header is truncated or invalid");
  }
  s.legacy = scheme == 1;
  s.record_ids.resize(count);
  s.shard.resize(count);
  s.slice.resize(count);
  for (uint64_t i = 0; i < count && ok; ++i) {
    ok = r.Get(s.record_ids[i]) && r.Get(s.shard[i]) && r.Get(s.slice[i]) &&
         s.shard[i] < s.params.shards && s.slice[i] < s.params.slices;
  }
  s.checkpoints.assign(s.params.shards,
                       std::vector<std::string>(s.params.slices));
  for (auto& shard : s.checkpoints) {
    for (std::string& c : shard) ok = ok && r.Bytes(c);
  }
  if (!ok || !r.done()) {
    return InvalidArgumentError("SISA state body is truncated or invalid");
  }
  return s;
}

Result<SisaState> TrainSisa(const torch::jit::Module& template_model,
                            const Dataset& dataset, const DeviceData& data,
                            const SisaParams& params, const Recipe& recipe,
                            const TrainControl& control) {
  if (params.shards <= 0 || params.shards > 65535 || params.slices <= 0 ||
      params.slices > 65535) {
    return InvalidArgumentError("sisa shards and slices must be in [1, 65535]");
  }
  LETHE_CORE_RETURN_IF_ERROR(recipe.Validate());
  SisaState s;
  s.params = params;
  s.recipe = recipe;
  LETHE_CORE_ASSIGN_OR_RETURN(s.template_bytes, SaveModel(template_model));
  LETHE_CORE_RETURN_IF_ERROR(TrainAll(s, dataset, data, {}, control));
  return s;
}

Result<torch::jit::Module> SisaEnsemble(const SisaState& s) {
  return Guarded("building SISA ensemble", [&]() -> Result<torch::jit::Module> {
    torch::jit::Module ens("__torch__.lethe.SisaEnsemble");
    std::string src = "def forward(self, x):\n";
    for (int k = 0; k < s.params.shards; ++k) {
      LETHE_CORE_ASSIGN_OR_RETURN(torch::jit::Module shard,
                                  LoadModel(s.checkpoints[k].back()));
      std::string name = "shard" + std::to_string(k);
      ens.register_module(name, shard);
      src += std::string(k ? "    p = p + " : "    p = ") +
             "torch.softmax(self." + name + ".forward(x), 1)\n";
    }
    src += "    return torch.log(torch.clamp_min(p / " +
           std::to_string(s.params.shards) + ".0, 1e-30))\n";
    ens.define(src);
    ens.eval();
    return ens;
  });
}

Result<SisaForgetResult> SisaForget(const SisaState& state,
                                    const Dataset& dataset,
                                    const DeviceData& data,
                                    const Partition& partition,
                                    const TrainControl& control) {
  auto row_of = RowsById(dataset);
  std::unordered_set<int64_t> removed;
  for (int64_t row : partition.forget)
    removed.insert(dataset.record_ids()[row]);
  SisaForgetResult out;
  SisaState& s = out.state;
  s = state;
  if (state.legacy) {  // re-assigned by subject and retrained: every shard
    s.legacy = false;
    LETHE_CORE_RETURN_IF_ERROR(TrainAll(s, dataset, data, removed, control));
    for (int k = 0; k < s.params.shards; ++k) out.retrained_shards.push_back(k);
    out.retrained_stages = s.params.shards * s.params.slices;
    out.rebuilt = true;
    return out;
  }
  std::vector<int> first(state.params.shards, state.params.slices);
  std::vector<Assigned> kept;
  std::unordered_set<int64_t> known;
  for (size_t i = 0; i < state.record_ids.size(); ++i) {
    const int64_t id = state.record_ids[i];
    known.insert(id);
    auto row = row_of.find(id);
    if (removed.count(id) || row == row_of.end() ||
        dataset.splits()[row->second] != Split::kTrain) {
      first[state.shard[i]] =
          std::min<int>(first[state.shard[i]], state.slice[i]);
      continue;
    }
    kept.push_back({id, state.shard[i], state.slice[i]});
  }
  // Training records the state does not know (added since it was trained):
  // into their subject's shard and slice, which retrains from that slice on.
  for (int64_t i = 0; i < dataset.size(); ++i) {
    const int64_t id = dataset.record_ids()[i];
    if (dataset.splits()[i] != Split::kTrain || known.count(id) ||
        removed.count(id)) {
      continue;
    }
    SisaAssignment a = AssignRow(s, dataset, i);
    kept.push_back(
        {id, static_cast<uint16_t>(a.shard), static_cast<uint16_t>(a.slice)});
    first[a.shard] = std::min(first[a.shard], a.slice);
    ++out.added_records;
  }
  SetRecords(s, std::move(kept));
  for (int k = 0; k < s.params.shards; ++k) {
    if (first[k] == s.params.slices) continue;
    torch::jit::Module m;
    if (first[k] == 0) {
      LETHE_CORE_ASSIGN_OR_RETURN(m, FreshShard(s, k, data.device));
    } else {
      LETHE_CORE_ASSIGN_OR_RETURN(m, LoadModel(s.checkpoints[k][first[k] - 1]));
      LETHE_CORE_RETURN_IF_ERROR(Guarded("moving shard", [&]() -> Status {
        m.to(data.device);
        return OkStatus();
      }));
    }
    LETHE_CORE_RETURN_IF_ERROR(
        TrainStages(s, m, data, row_of, k, first[k], control));
    out.retrained_shards.push_back(k);
    out.retrained_stages += s.params.slices - first[k];
  }
  return out;
}

}  // namespace lethe::core

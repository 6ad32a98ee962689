// SISA training and exact unlearning (Bourtoule et al., "Machine
// Unlearning", IEEE S&P 2021).
//
// The training records are split into K shards by a hash of the subject key
// (a subject lives in exactly one shard) and each shard into S slices by a
// hash of the record id. Shard k is trained in S stages: stage j trains on
// slices 0..j for ceil(epochs / S) epochs with the recipe (optimiser state
// and schedule restart per stage), starting from the checkpoint of stage
// j - 1 (stage 0 from the template re-initialised with the shard's seed), and
// is checkpointed. The model is the average of the shards' softmax outputs,
// exported as one TorchScript module returning log(mean softmax).
//
// Forgetting removes the records and retrains, in each affected shard only,
// the stages from the first slice that held a removed record, starting from
// the last checkpoint before it. Records of the assignment missing from the
// dataset (deleted since) count as removed. Because shard and slice are pure
// functions of subject key and record id, and CPU training is deterministic,
// the result equals bit for bit a fresh TrainSisa without those records.
// Exact. Cost: the affected shards' stages from the first affected slice on;
// with K shards roughly 1/K of a full retraining or less per shard touched.
//
// Torch-level header.
#ifndef LETHE_CORE_SISA_H_
#define LETHE_CORE_SISA_H_

#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lethe/core/dataset.h"
#include "lethe/core/policy.h"
#include "lethe/core/recipe.h"
#include "lethe/core/status.h"
#include "lethe/core/train.h"

namespace lethe::core {

// Everything SISA needs between runs; SerializeSisaState gives the bytes to
// persist (format in docs/engine.md, ends with a SHA-256 of the rest).
struct SisaState {
  SisaParams params;
  Recipe recipe;
  std::string template_bytes;       // the untrained model (architecture)
  std::vector<int64_t> record_ids;  // ascending
  std::vector<uint16_t> shard;      // per record id
  std::vector<uint16_t> slice;      // per record id
  // checkpoints[k][j]: TorchScript bytes of shard k after stage j.
  std::vector<std::vector<std::string>> checkpoints;
};
std::string SerializeSisaState(const SisaState& state);
// INVALID_ARGUMENT for truncated, corrupt or inconsistent bytes.
Result<SisaState> ParseSisaState(std::string_view bytes);

int ShardOfSubject(std::string_view subject_key, int shards);
int SliceOfRecord(int64_t record_id, uint64_t seed, int slices);

// Trains all shards on the dataset's train split.
Result<SisaState> TrainSisa(const torch::jit::Module& template_model,
                            const Dataset& dataset, const DeviceData& data,
                            const SisaParams& params, const Recipe& recipe,
                            const TrainControl& control = {});

// The aggregate model of the current checkpoints.
Result<torch::jit::Module> SisaEnsemble(const SisaState& state);

struct SisaForgetResult {
  SisaState state;
  std::vector<int> retrained_shards;
  int retrained_stages = 0;
};

// Forgets the records of partition.forget (and assignment records absent
// from the dataset).
Result<SisaForgetResult> SisaForget(const SisaState& state,
                                    const Dataset& dataset,
                                    const DeviceData& data,
                                    const Partition& partition,
                                    const TrainControl& control = {});

}  // namespace lethe::core

#endif  // LETHE_CORE_SISA_H_

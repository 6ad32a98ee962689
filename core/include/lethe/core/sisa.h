// SISA training and exact unlearning (Bourtoule et al., "Machine
// Unlearning", IEEE S&P 2021).
//
// Assignment. Requests are per subject, so a subject's records all go to one
// shard and one slice: AssignSubject, a hash of the subject key salted with
// the recipe seed. (Slices by record put one of a subject's ~20 records in
// slice 0 for nearly every subject, so every erasure retrained its shard from
// scratch; issue 15.) The salt decorrelates models; it is public (the claim
// query recomputes shards in SQL to batch requests per shard), so it is no
// defence against someone who picks subject keys to land in slice 0.
//
// Schedule. Shard k is trained in S stages: stage j trains on slices 0..j for
// SisaStageSteps steps, e' = 2E / (S + 1) epochs of those rows (the paper's
// choice: a shard's S stages then cost E epochs of the shard, as training it
// once would), with the recipe (optimiser state and learning-rate schedule
// restart per stage), starting from the checkpoint of stage j - 1 (stage 0
// from the template re-initialised with the shard's seed), and is
// checkpointed. The model is the average of the shards' softmax outputs,
// exported as one TorchScript module returning log(mean softmax).
//
// Forgetting removes the records and retrains, in each affected shard only,
// the stages from the first slice that changed, starting from the last
// checkpoint before it. Records of the assignment missing from the dataset
// (deleted since) count as removed; training records the state does not know
// (added to the dataset since) are assigned and trained the same way, so the
// state always stands for the data it was last given. Because assignment and
// schedule are pure functions of subject key, record id and the state's
// recipe (every field of which the state keeps), and CPU training is
// deterministic, the result equals bit for bit a fresh TrainSisa on the
// dataset without the forgotten records. Exact. Expected cost for one
// subject: its shard's stages from a uniformly drawn slice, about 2/3 of the
// shard's training, i.e. 2/(3K) of a full training.
//
// States written before this scheme (v1: slices by record id, ceil(E / S)
// epochs per stage) still load and serve; their next SisaForget re-assigns
// and retrains every shard (rebuilt = true), which is exact as well.
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
  // Read from a v1 state (see above): the next SisaForget rebuilds it.
  bool legacy = false;
};
std::string SerializeSisaState(const SisaState& state);
// INVALID_ARGUMENT for truncated, corrupt or inconsistent bytes.
Result<SisaState> ParseSisaState(std::string_view bytes);

// D = SHA-256("lethe-sisa-v2:" + decimal(seed) + ":" + subject_key): the
// shard is the first 8 bytes of D (big-endian) modulo shards, the slice the
// next 8 modulo slices.
struct SisaAssignment {
  int shard = 0;
  int slice = 0;
};
SisaAssignment AssignSubject(std::string_view subject_key, uint64_t seed,
                             int shards, int slices);

// Steps of a stage over `rows` records: 2E / (S + 1) epochs of
// ceil(rows / batch) batches, rounded, at least 1.
int64_t SisaStageSteps(const SisaParams& params, const Recipe& recipe,
                       int64_t rows);

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
  int64_t added_records = 0;  // training records new to the state
  bool rebuilt = false;       // a legacy state, retrained from scratch
};

// Forgets the records of partition.forget (and assignment records absent
// from the dataset), and trains the dataset's training records new to the
// state.
Result<SisaForgetResult> SisaForget(const SisaState& state,
                                    const Dataset& dataset,
                                    const DeviceData& data,
                                    const Partition& partition,
                                    const TrainControl& control = {});

}  // namespace lethe::core

#endif  // LETHE_CORE_SISA_H_

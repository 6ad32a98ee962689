// The messages between the worker and `lethe-engine`, its sandboxed engine
// process (docs/security.md, "The engine sandbox"): one EngineCall on the
// child's stdin, framed by its length and followed, for train and unlearn,
// by the training set in core's dataset encoding (which the child decodes
// as it reads the pipe, so that neither side holds the set twice); one
// EngineReply on its stdout; in lethe/core/wire.h's encoding. The call carries
// the model's stored rows rather than the parsed spec: the child parses them
// itself with ParseModelSpec, exactly as the worker does. Torch-free.
//
// The worker treats a reply as untrusted input: DecodeEngineReply bounds
// every length by the message and fails on anything malformed.
#ifndef LETHE_WORKER_ENGINE_ENGINE_WIRE_H_
#define LETHE_WORKER_ENGINE_ENGINE_WIRE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lethe/core/dataset.h"
#include "lethe/core/engine.h"
#include "lethe/core/status.h"
#include "storage/types.h"

namespace lethe::worker {

enum class EngineOp : uint64_t { kValidate = 1, kTrain = 2, kUnlearn = 3 };

struct EngineCall {
  EngineOp op = EngineOp::kValidate;
  std::string device;  // core::ParseDevice's form
  int threads = 0;     // LibTorch intra-op threads
  // The stored rows: JSON columns and the dataset's feature spec.
  storage::ModelRow model;
  storage::DatasetRow dataset;
  std::string model_bytes;  // validate, unlearn
  std::vector<std::string> forget_subjects;
  bool trained_by_lethe = false;
  std::string state;  // the version's SISA or Newton state
};

// The call's result: a status, and when OK what the op produced.
struct EngineReply {
  core::Status status;
  core::TrainedModel trained;    // train
  core::UnlearnOutcome outcome;  // unlearn
  // What the engine process used, as it measured itself (every op; for
  // metrics and logs only: an untrusted process may say anything here).
  int64_t peak_rss_bytes = 0;
  double cpu_seconds = 0;
};

std::string EncodeEngineCall(const EngineCall& call);
core::Result<EngineCall> DecodeEngineCall(std::string_view bytes);
// The call as the engine's stdin starts: its length (u64), then the call.
std::string EncodeEngineCallFrame(const EngineCall& call);
// Reads one frame from `read`, leaving what follows it (the training set)
// unread. INVALID_ARGUMENT for a short or malformed frame.
core::Result<EngineCall> ReadEngineCallFrame(const core::ByteReader& read);
std::string EncodeEngineReply(EngineOp op, const EngineReply& reply);
// INVALID_ARGUMENT (for the message) when `bytes` is not a reply to `op`.
core::Result<EngineReply> DecodeEngineReply(EngineOp op,
                                            std::string_view bytes);

}  // namespace lethe::worker

#endif  // LETHE_WORKER_ENGINE_ENGINE_WIRE_H_

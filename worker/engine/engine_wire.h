// The messages between the worker and `lethe-engine`, its sandboxed engine
// process (docs/security.md, "The engine sandbox"), in lethe/core/wire.h's
// encoding. On the child's stdin: one EngineCall framed by its length,
// then the model file the call names (model_size bytes: validate,
// unlearn), then for train and unlearn the training set in core's dataset
// encoding (which the child decodes as it reads the pipe, so that neither
// side holds the set twice). On its stdout: one EngineReply framed by its
// length, then the model file it produced (model_size bytes), which the
// worker spools to disk as it arrives and never holds. The call carries
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
  int64_t model_size = 0;  // validate, unlearn: the bytes after the frame
  std::vector<std::string> forget_subjects;
  bool trained_by_lethe = false;
  std::string state;  // the version's SISA or Newton state
};

// The call's result: a status, and when OK what the op produced, its model
// file apart (trained.model_bytes and outcome.model_bytes stay empty).
struct EngineReply {
  core::Status status;
  core::TrainedModel trained;    // train
  core::UnlearnOutcome outcome;  // unlearn
  // The model file's size: the bytes that follow the reply's frame (train,
  // and unlearn whose report is ok; 0 otherwise).
  int64_t model_size = 0;
  // What the engine process used, as it measured itself (every op; for
  // metrics and logs only: an untrusted process may say anything here).
  int64_t peak_rss_bytes = 0;
  double cpu_seconds = 0;
};

std::string EncodeEngineCall(const EngineCall& call);
core::Result<EngineCall> DecodeEngineCall(std::string_view bytes);
// The call as the engine's stdin starts: its length (u64), then the call.
std::string EncodeEngineCallFrame(const EngineCall& call);
// Reads one frame from `read`, leaving what follows it (the model file,
// the training set) unread. INVALID_ARGUMENT for a short or malformed
// frame.
core::Result<EngineCall> ReadEngineCallFrame(const core::ByteReader& read);
std::string EncodeEngineReply(EngineOp op, const EngineReply& reply);
// The reply as the engine's stdout starts: its length (u64), then the
// reply; the model file follows.
std::string EncodeEngineReplyFrame(EngineOp op, const EngineReply& reply);
// INVALID_ARGUMENT (for the message) when `bytes` is not a reply to `op`.
core::Result<EngineReply> DecodeEngineReply(EngineOp op,
                                            std::string_view bytes);
// Reads one reply frame of at most `max_bytes` from `read`, leaving the
// model file after it unread. INVALID_ARGUMENT when short, too long or
// malformed.
core::Result<EngineReply> ReadEngineReplyFrame(EngineOp op,
                                               const core::ByteReader& read,
                                               uint64_t max_bytes);

}  // namespace lethe::worker

#endif  // LETHE_WORKER_ENGINE_ENGINE_WIRE_H_

// Fuzz targets at the engine sandbox's boundary (issue 17):
//   LETHE_FUZZ_TARGET 1, engine_reply: what the worker decodes from the
//     untrusted lethe-engine process (DecodeEngineReply, and with it
//     DecodeReport), and the call the engine decodes (DecodeEngineCall).
//     The first byte picks the op. A decoded message re-encodes to bytes
//     that decode again.
//   LETHE_FUZZ_TARGET 2, model_spec: the stored policy, recipe and
//     architecture JSON (protobuf's JSON mapping) that ParseModelSpec turns
//     into the engine's types, in the worker and in the engine process.
//     The input is the three documents separated by NUL bytes; the first
//     byte picks the dataset's feature type and class count.
// Any bytes: a value or an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_split.h"
#include "tests/fuzz/fuzz_target.h"
#include "worker/engine/engine_wire.h"
#include "worker/engine/model_spec.h"

namespace {

using lethe::worker::EngineOp;

[[maybe_unused]] void Wire(std::string_view in) {
  if (in.empty()) return;
  const auto op = static_cast<EngineOp>(1 + static_cast<uint8_t>(in[0]) % 3);
  in.remove_prefix(1);
  auto reply = lethe::worker::DecodeEngineReply(op, in);
  if (reply.ok()) {
    const std::string again = lethe::worker::EncodeEngineReply(op, *reply);
    if (!lethe::worker::DecodeEngineReply(op, again).ok()) std::abort();
  }
  auto call = lethe::worker::DecodeEngineCall(in);
  if (call.ok()) {
    const std::string again = lethe::worker::EncodeEngineCall(*call);
    if (!lethe::worker::DecodeEngineCall(again).ok()) std::abort();
  }
}

[[maybe_unused]] void Spec(std::string_view in) {
  if (in.empty()) return;
  lethe::storage::DatasetRow dataset;
  dataset.feature_shape = {1, 4, 4};
  dataset.feature_type = (in[0] & 1) ? "float32" : "uint8";
  dataset.num_classes = 2 + (static_cast<uint8_t>(in[0]) >> 1) % 20;
  in.remove_prefix(1);
  std::vector<std::string> parts = absl::StrSplit(
      absl::string_view(in.data(), in.size()), absl::ByChar('\0'));
  parts.resize(3);
  lethe::storage::ModelRow model;
  model.architecture_json = parts[0];
  model.recipe_json = parts[1];
  model.policy_json = parts[2];
  (void)lethe::worker::ParseModelSpec(model, dataset);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
#if LETHE_FUZZ_TARGET == 1
  Wire(in);
#else
  Spec(in);
#endif
  return 0;
}

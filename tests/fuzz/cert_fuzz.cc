// Fuzz target: what `lethectl verify` parses from a bundle an auditor was
// handed (issue 17, "Fuzzing"): the bundle, the DSSE envelope, the
// statement, a checkpoint body, and the JSON reader under them all.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cert/bundle.h"
#include "cert/checkpoint.h"
#include "cert/dsse.h"
#include "cert/json.h"
#include "cert/statement.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)lethe::cert::Json::Parse(in);
  (void)lethe::cert::Bundle::Parse(in);
  (void)lethe::cert::Envelope::Parse(in);
  (void)lethe::cert::ParseStatement(in);
  (void)lethe::cert::Checkpoint::ParseBody(in);
  return 0;
}

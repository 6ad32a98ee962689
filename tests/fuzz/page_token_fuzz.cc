// Fuzz target: page tokens, which any authenticated caller sends back
// verbatim (issue 17, "Fuzzing"). Any bytes: a cursor, the first page, or
// INVALID_ARGUMENT; never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/convert.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string token(reinterpret_cast<const char*>(data), size);
  (void)lethe::server::DecodePageToken(token, "erasures|0|||");
  (void)lethe::server::PageTokenFields(token, "v1", 3);
  return 0;
}

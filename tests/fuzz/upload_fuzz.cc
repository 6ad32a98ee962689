// Fuzz targets of the upload parsers (issue 17, "Fuzzing"): what an
// operator's upload reaches before anything is stored. Each must answer OK
// or an error for any bytes: no crash, no sanitizer report, bounded memory.
// LETHE_FUZZ_TARGET picks the parser: 1 CSV, 2 IDX, 3 gzip.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/fuzz_target.h"
#include "upload/upload_parser.h"

#if LETHE_FUZZ_TARGET != 3
namespace {

using lethe::upload::FeatureSpec;
using lethe::upload::FeatureType;

// The first byte picks the dataset's feature type; the rest is the input.
FeatureSpec Spec(uint8_t selector) {
  return FeatureSpec{
      {2, 2}, selector & 1 ? FeatureType::kFloat32 : FeatureType::kUint8, 10};
}

}  // namespace
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
#if LETHE_FUZZ_TARGET == 1
  (void)lethe::upload::ParseCsv(in, Spec(data[0]));
#elif LETHE_FUZZ_TARGET == 2
  // After the selector: u16 LE length of the images part, u16 LE length of
  // the labels part, the two parts, then the subjects.
  if (in.size() < 4) return 0;
  const auto u16 = [&](size_t at) {
    return static_cast<size_t>(static_cast<uint8_t>(in[at])) |
           static_cast<size_t>(static_cast<uint8_t>(in[at + 1])) << 8;
  };
  const std::string_view rest = in.substr(4);
  const size_t a = std::min(u16(0), rest.size());
  const size_t b = std::min(a + u16(2), rest.size());
  (void)lethe::upload::ParseIdx(rest.substr(0, a), rest.substr(a, b - a),
                                rest.substr(b), (data[0] & 2) != 0, Spec(0));
#elif LETHE_FUZZ_TARGET == 3
  (void)lethe::upload::MaybeGunzip(in, size_t{1} << 20);
#else
#error "LETHE_FUZZ_TARGET must be 1, 2 or 3"
#endif
  return 0;
}

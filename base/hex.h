// Lower-case hexadecimal text of bytes, and back.
#ifndef LETHE_BASE_HEX_H_
#define LETHE_BASE_HEX_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace lethe::base {

// Two lower-case digits per byte.
std::string HexEncode(absl::string_view bytes);

// The bytes `hex` spells (digits of either case), or nullopt unless `hex` is
// an even-length string of [0-9a-fA-F].
std::optional<std::string> HexDecode(absl::string_view hex);

}  // namespace lethe::base

#endif  // LETHE_BASE_HEX_H_

#include "lethectl/uuid.h"

#include "base/crypto.h"
#include "base/hex.h"

namespace lethe::cli {

std::string NewUuidV4() {
  std::string b = base::RandomBytes(16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);  // variant 10
  const std::string hex = base::HexEncode(b);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) +
         "-" + hex.substr(16, 4) + "-" + hex.substr(20);
}

}  // namespace lethe::cli

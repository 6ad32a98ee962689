// storage's names for base's digests, randomness and hex (base/crypto.h,
// base/hex.h): one implementation, kept under the names storage's callers
// and their std::string_view arguments use.
#include "storage/hash.h"

#include "absl/strings/string_view.h"
#include "base/crypto.h"
#include "base/hex.h"

namespace lethe::storage {
namespace {

absl::string_view View(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

std::string Sha256(std::string_view data) { return base::Sha256(View(data)); }

std::string HmacSha256(std::string_view key, std::string_view data) {
  return base::HmacSha256(View(key), View(data));
}

std::string RandomBytes(size_t n) { return base::RandomBytes(n); }

std::string ToHex(std::string_view bytes) {
  return base::HexEncode(View(bytes));
}

std::optional<std::string> FromHex(std::string_view hex) {
  return base::HexDecode(View(hex));
}

bool SecureEquals(std::string_view a, std::string_view b) {
  return base::SecureEquals(View(a), View(b));
}

}  // namespace lethe::storage

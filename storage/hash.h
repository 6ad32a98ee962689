// SHA-256, HMAC-SHA256, randomness and hex for storage and its callers:
// base/crypto.h and base/hex.h under std::string_view signatures. All
// digests are raw 32-byte strings.
#ifndef LETHE_STORAGE_HASH_H_
#define LETHE_STORAGE_HASH_H_

#include <optional>
#include <string>
#include <string_view>

namespace lethe::storage {

std::string Sha256(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);
// Cryptographically secure random bytes (RAND_bytes); aborts if the CSPRNG
// fails, as nothing safe can continue without it.
std::string RandomBytes(size_t n);
std::string ToHex(std::string_view bytes);
// nullopt unless `hex` is an even-length string of [0-9a-fA-F].
std::optional<std::string> FromHex(std::string_view hex);
// Constant-time equality for secrets of equal length.
bool SecureEquals(std::string_view a, std::string_view b);

}  // namespace lethe::storage

#endif  // LETHE_STORAGE_HASH_H_

// SHA-256 (FIPS 180-4), used to name model versions: the hash of a model's
// saved TorchScript bytes identifies it. Small and self-contained so core/
// needs no OpenSSL.
#ifndef LETHE_CORE_SHA256_H_
#define LETHE_CORE_SHA256_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace lethe::core {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);
// Lower-case hex of the digest (64 characters).
std::string Sha256Hex(std::string_view data);
std::string ToHex(const Sha256Digest& digest);

}  // namespace lethe::core

#endif  // LETHE_CORE_SHA256_H_

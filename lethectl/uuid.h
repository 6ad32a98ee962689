// The little cryptography lethectl needs, on OpenSSL: SHA-256 to check
// artifacts, random UUIDs for idempotency keys and random subject salts.
#ifndef LETHE_LETHECTL_CRYPTO_H_
#define LETHE_LETHECTL_CRYPTO_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

struct evp_md_ctx_st;

namespace lethe::cli {

// Incremental SHA-256 (OpenSSL EVP).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  // The digest as lower-case hex. Call once.
  std::string FinishHex();

 private:
  evp_md_ctx_st* ctx_;
};

// Lower-case hex of arbitrary bytes.
std::string HexEncode(absl::string_view bytes);
// The bytes `hex` spells (either case), or nullopt if it is not hex.
std::optional<std::string> HexDecode(absl::string_view hex);

// `n` bytes from OpenSSL's CSPRNG.
std::string RandomBytes(size_t n);

// A random (version 4, RFC 9562 section 5.4) UUID in lower case, from
// OpenSSL's CSPRNG.
std::string NewUuidV4();

}  // namespace lethe::cli

#endif  // LETHE_LETHECTL_CRYPTO_H_

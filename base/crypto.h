// The OpenSSL 3 primitives lethe's programs share: SHA-256 (whole and
// incremental), HMAC-SHA256, random bytes and constant-time comparison.
// Digests are raw 32-byte strings; base/hex.h spells them.
//
// OpenSSL fails these only on allocation failure or a broken provider, and
// nothing safe can continue then: every function here aborts the process
// instead of returning an error.
#ifndef LETHE_BASE_CRYPTO_H_
#define LETHE_BASE_CRYPTO_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

struct evp_md_ctx_st;

namespace lethe::base {

inline constexpr size_t kSha256Bytes = 32;

std::string Sha256(absl::string_view data);
std::string HmacSha256(absl::string_view key, absl::string_view data);

// SHA-256 of data given in pieces (a file read in chunks). Not thread-safe;
// movable, not copyable.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(Sha256Stream&& other) noexcept;
  Sha256Stream& operator=(Sha256Stream&& other) noexcept;
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;

  void Update(absl::string_view data);
  // The digest of everything given to Update. Call once; the stream is
  // spent afterwards.
  std::string Finish();

 private:
  evp_md_ctx_st* ctx_;
};

// `n` bytes from OpenSSL's CSPRNG (RAND_bytes).
std::string RandomBytes(size_t n);

// Equality of two secrets in time that depends only on their lengths.
bool SecureEquals(absl::string_view a, absl::string_view b);

}  // namespace lethe::base

#endif  // LETHE_BASE_CRYPTO_H_

#include "base/crypto.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace lethe::base {
namespace {

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "lethe: OpenSSL %s failed\n", what);
  std::abort();
}

std::string Bytes(const unsigned char* data, unsigned int size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace

std::string Sha256(absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  Check(EVP_Digest(data.data(), data.size(), out, &size, EVP_sha256(),
                   nullptr) == 1,
        "EVP_Digest");
  return Bytes(out, size);
}

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  Check(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(),
             out, &size) != nullptr,
        "HMAC");
  return Bytes(out, size);
}

Sha256Stream::Sha256Stream() : ctx_(EVP_MD_CTX_new()) {
  Check(ctx_ != nullptr, "EVP_MD_CTX_new");
  Check(EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1,
        "EVP_DigestInit_ex");
}

Sha256Stream::~Sha256Stream() { EVP_MD_CTX_free(ctx_); }

Sha256Stream::Sha256Stream(Sha256Stream&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)) {}

Sha256Stream& Sha256Stream::operator=(Sha256Stream&& other) noexcept {
  std::swap(ctx_, other.ctx_);
  return *this;
}

void Sha256Stream::Update(absl::string_view data) {
  Check(EVP_DigestUpdate(ctx_, data.data(), data.size()) == 1,
        "EVP_DigestUpdate");
}

std::string Sha256Stream::Finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  Check(EVP_DigestFinal_ex(ctx_, out, &size) == 1, "EVP_DigestFinal_ex");
  return Bytes(out, size);
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  Check(RAND_bytes(reinterpret_cast<unsigned char*>(out.data()),
                   static_cast<int>(n)) == 1,
        "RAND_bytes");
  return out;
}

bool SecureEquals(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() &&
         CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace lethe::base

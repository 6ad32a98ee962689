// Ed25519 keys (RFC 8032) through OpenSSL 3's EVP API, and the KeyRing that
// lets signing keys rotate without breaking old certificates.
//
// Key files are PEM (PKCS#8 private, SubjectPublicKeyInfo public), so
// `openssl pkey` reads them, preceded by optional metadata lines that
// OpenSSL skips:
//
//   # name: lethe.example/log
//   # not-before: 2025-01-01T00:00:00Z
//   # not-after: 2027-01-01T00:00:00Z
//   -----BEGIN PRIVATE KEY-----
//
// `name` is the key name of checkpoint signatures (C2SP signed-note; no
// spaces, no '+'); keep it the same across rotations. A missing bound means
// unbounded.
//
// Key id: the lower-case hex SHA-256 of the raw 32-byte public key. It names
// the key in DSSE signatures and in the certificate table; checkpoint notes
// use their own 4-byte id (checkpoint.h).
//
// Thread safety: keys are immutable after loading and safe to share.
#ifndef LETHE_CERT_KEYS_H_
#define LETHE_CERT_KEYS_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

// OpenSSL's key type, declared as <openssl/types.h> does, so that this header
// need not include OpenSSL.
using EVP_PKEY = struct evp_pkey_st;

namespace lethe::cert {

inline constexpr size_t kEd25519PublicKeyBytes = 32;
inline constexpr size_t kEd25519SignatureBytes = 64;
inline constexpr std::string_view kDefaultKeyName = "lethe";

// Where and when a key may sign. Times in microseconds since the epoch;
// 0 = unbounded.
struct KeyInfo {
  std::string name = std::string(kDefaultKeyName);
  int64_t not_before_us = 0;
  int64_t not_after_us = 0;

  bool ValidAt(int64_t t_us) const {
    return (not_before_us == 0 || t_us >= not_before_us) &&
           (not_after_us == 0 || t_us < not_after_us);
  }
};

class PublicKey {
 public:
  // INVALID_ARGUMENT unless `raw` is 32 bytes.
  static absl::StatusOr<PublicKey> FromRaw(std::string_view raw);
  // A PEM SubjectPublicKeyInfo of an Ed25519 key; metadata lines as above.
  static absl::StatusOr<PublicKey> FromPem(std::string_view pem);

  const std::string& raw() const { return raw_; }
  const std::string& key_id() const { return key_id_; }
  const KeyInfo& info() const { return info_; }
  void set_info(KeyInfo info) { info_ = std::move(info); }

  // PEM with the metadata lines.
  std::string Pem() const;
  // RFC 8037 JWK: {"crv":"Ed25519","kid":key id,"kty":"OKP","x":base64url}.
  std::string Jwk() const;
  // True iff `signature` is a valid Ed25519 signature of `message`.
  bool Verify(std::string_view message, std::string_view signature) const;

 private:
  std::string raw_;
  std::string key_id_;
  KeyInfo info_;
};

class PrivateKey {
 public:
  static PrivateKey Generate();
  // INVALID_ARGUMENT unless `seed` is 32 bytes (RFC 8032's secret key).
  static absl::StatusOr<PrivateKey> FromSeed(std::string_view seed);
  // A PEM PKCS#8 Ed25519 private key; metadata lines as above.
  static absl::StatusOr<PrivateKey> FromPem(std::string_view pem);

  const PublicKey& public_key() const { return public_key_; }
  const KeyInfo& info() const { return public_key_.info(); }
  void set_info(KeyInfo info) { public_key_.set_info(std::move(info)); }

  // The 64-byte Ed25519 signature (deterministic).
  std::string Sign(std::string_view message) const;
  // PEM PKCS#8 with the metadata lines.
  std::string Pem() const;

 private:
  static absl::StatusOr<PrivateKey> FromPkey(EVP_PKEY* pkey);

  std::shared_ptr<EVP_PKEY> pkey_;
  PublicKey public_key_;
};

// Several signing keys: signs with the newest one valid now (latest
// not-before), verifies with any, by key id.
class KeyRing {
 public:
  KeyRing() = default;
  explicit KeyRing(std::vector<PrivateKey> keys) : keys_(std::move(keys)) {}

  // Loads PEM private key files. INVALID_ARGUMENT naming the file if one
  // cannot be read or parsed, or if two files hold the same key.
  static absl::StatusOr<KeyRing> LoadFiles(
      const std::vector<std::string>& paths);

  bool empty() const { return keys_.empty(); }
  const std::vector<PrivateKey>& keys() const { return keys_; }
  std::vector<PublicKey> PublicKeys() const;

  // FAILED_PRECONDITION when no key is valid at `t_us`.
  absl::StatusOr<const PrivateKey*> SignerAt(int64_t t_us) const;

 private:
  std::vector<PrivateKey> keys_;
};

// Loads PEM public key files (the .pub files of GenerateKeyFiles),
// metadata lines included. INVALID_ARGUMENT naming the file if one cannot
// be read or parsed, holds a private key (a process that verifies needs no
// private key, and must not be given one), or repeats a key.
absl::StatusOr<std::vector<PublicKey>> LoadPublicKeyFiles(
    const std::vector<std::string>& paths);

// The public key with `key_id` in `keys`, or nullptr.
const PublicKey* FindKey(std::span<const PublicKey> keys,
                         std::string_view key_id);

// Writes `prefix`.key (private, mode 0600) and `prefix`.pub (public, 0644)
// for a fresh key with `info`. ALREADY_EXISTS rather than overwrite a file;
// PERMISSION_DENIED / INTERNAL when writing fails.
absl::StatusOr<PrivateKey> GenerateKeyFiles(const std::string& prefix,
                                            const KeyInfo& info);

// Reads a whole file; NOT_FOUND naming it when it cannot be opened.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace lethe::cert

#endif  // LETHE_CERT_KEYS_H_

// Log checkpoints: the C2SP tlog-checkpoint body
//
//   <origin>\n<tree size, decimal>\n<root hash, base64>\n
//
// carried in a C2SP signed-note: the body, a blank line, then one line per
// signature, "— <key name> <base64(key id || Ed25519 signature)>\n", where
// the signature covers the body (with its final newline) and the 4-byte key
// id is SHA-256(key name || 0x0A || 0x01 || public key)[:4]. A verifier
// knows a key by its verifier-key string "<name>+<hex key id>+<base64(0x01
// || public key)>".
#ifndef LETHE_CERT_CHECKPOINT_H_
#define LETHE_CERT_CHECKPOINT_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cert/keys.h"

namespace lethe::cert {

struct Checkpoint {
  std::string origin;
  uint64_t size = 0;
  std::string root_hash;  // raw 32 bytes

  std::string Body() const;
  // INVALID_ARGUMENT unless `body` is exactly a checkpoint body (extension
  // lines are not used by lethe and are refused).
  static absl::StatusOr<Checkpoint> ParseBody(std::string_view body);
};

// The 4-byte signed-note key id of an Ed25519 key named `name`.
std::string NoteKeyId(std::string_view name, const PublicKey& key);
// "<name>+<hex key id>+<base64(0x01 || key)>".
std::string VerifierKey(std::string_view name, const PublicKey& key);

// The note: `checkpoint.Body()` signed by `key` under the key's name.
// INVALID_ARGUMENT if the origin is empty or has a newline.
absl::StatusOr<std::string> SignCheckpoint(const Checkpoint& checkpoint,
                                           const PrivateKey& key);

struct OpenedCheckpoint {
  Checkpoint checkpoint;
  const PublicKey* signer = nullptr;  // points into the `keys` given
};

// Parses a signed note and checks that a signature line by one of `keys`
// (matching key name, note key id and signature) covers the body.
// PERMISSION_DENIED when no line verifies, INVALID_ARGUMENT for a malformed
// note.
absl::StatusOr<OpenedCheckpoint> OpenCheckpoint(
    std::string_view note, std::span<const PublicKey> keys);

}  // namespace lethe::cert

#endif  // LETHE_CERT_CHECKPOINT_H_

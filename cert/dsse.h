// DSSE v1 envelopes (github.com/secure-systems-lab/dsse, envelope.md and
// protocol.md): a payload, its type, and signatures over
//
//   PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
//
// where LEN is the byte length in ASCII decimal without leading zeros.
//
// The serialised envelope is deterministic JSON (json.h):
//   {"payload":base64,"payloadType":type,"signatures":[{"keyid":id,"sig":base64}]}
// Those exact bytes are what the transparency log hashes into a leaf.
#ifndef LETHE_CERT_DSSE_H_
#define LETHE_CERT_DSSE_H_

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cert/keys.h"

namespace lethe::cert {

inline constexpr std::string_view kInTotoPayloadType =
    "application/vnd.in-toto+json";

std::string Pae(std::string_view type, std::string_view body);

struct DsseSignature {
  std::string keyid;
  std::string sig;  // raw 64 bytes
};

struct Envelope {
  std::string payload_type;
  std::string payload;  // raw bytes
  std::vector<DsseSignature> signatures;

  std::string Serialize() const;
  // INVALID_ARGUMENT for anything but an envelope as Serialize writes it
  // (unknown fields, bad base64, no signatures).
  static absl::StatusOr<Envelope> Parse(std::string_view json);
};

Envelope SignEnvelope(std::string_view payload_type, std::string_view payload,
                      const PrivateKey& key);

// The key (from `keys`) whose signature over the envelope verifies. A
// signature names its key by keyid; one naming no key in `keys` is skipped.
// PERMISSION_DENIED if no signature verifies (naming why).
absl::StatusOr<const PublicKey*> VerifyEnvelope(
    const Envelope& envelope, std::span<const PublicKey> keys);

}  // namespace lethe::cert

#endif  // LETHE_CERT_DSSE_H_

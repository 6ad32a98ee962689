// The certificate bundle: everything an auditor needs to check one
// certificate offline, in one JSON file (docs/compliance.md):
//
//   {"checkpoint": signed note text,
//    "envelope": the DSSE envelope's exact bytes, as a JSON string,
//    "inclusionProof": [base64 hash, ...],
//    "leafIndex": n,
//    "mediaType": kBundleMediaType,
//    "treeSize": n}
//
// VerifyBundle trusts nothing in the bundle but the public keys it is
// given: it recomputes the leaf hash from the envelope bytes.
#ifndef LETHE_CERT_BUNDLE_H_
#define LETHE_CERT_BUNDLE_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cert/checkpoint.h"
#include "cert/keys.h"
#include "cert/statement.h"

namespace lethe::cert {

inline constexpr std::string_view kBundleMediaType =
    "application/vnd.lethe.certificate-bundle.v1+json";

struct Bundle {
  std::string envelope;    // serialized DSSE envelope (dsse.h)
  std::string checkpoint;  // signed note (checkpoint.h)
  uint64_t leaf_index = 0;
  uint64_t tree_size = 0;
  std::vector<std::string> inclusion_proof;  // raw 32-byte hashes

  std::string Serialize() const;
  // INVALID_ARGUMENT for anything else than what Serialize writes (unknown
  // or missing fields, another media type, bad base64).
  static absl::StatusOr<Bundle> Parse(std::string_view json);
};

struct VerifiedCertificate {
  CompletionRecord record;
  std::string envelope_key_id;  // the key that signed the envelope
  std::string leaf_hash;        // recomputed from the envelope
  Checkpoint checkpoint;
  uint64_t leaf_index = 0;
};

// Checks, in order: the envelope's signature by one of `keys`, with a
// payload of the in-toto type; the statement (ParseStatement); that the
// signing key's validity window covered the completion time; the
// checkpoint's signature by one of `keys`; that the checkpoint's size is
// the bundle's tree size; and the inclusion of SHA-256(0x00 ||
// SHA-256(envelope)) at leaf_index under the checkpoint's root.
// PERMISSION_DENIED naming the first check that failed; INVALID_ARGUMENT
// for a malformed bundle.
absl::StatusOr<VerifiedCertificate> VerifyBundle(
    const Bundle& bundle, std::span<const PublicKey> keys);

}  // namespace lethe::cert

#endif  // LETHE_CERT_BUNDLE_H_

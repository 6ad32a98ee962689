#include "cert/bundle.h"

#include "cert/dsse.h"
#include "cert/encoding.h"
#include "cert/json.h"
#include "cert/merkle.h"

namespace lethe::cert {
namespace {

absl::Status Denied(std::string_view what, const absl::Status& cause) {
  std::string msg(what);
  msg.append(": ");
  msg.append(cause.message().data(), cause.message().size());
  return absl::PermissionDeniedError(msg);
}

}  // namespace

std::string Bundle::Serialize() const {
  Json::Array proof;
  for (const std::string& h : inclusion_proof) proof.push_back(Base64Encode(h));
  return Json(Json::Object{{"checkpoint", checkpoint},
                           {"envelope", envelope},
                           {"inclusionProof", std::move(proof)},
                           {"leafIndex", static_cast<int64_t>(leaf_index)},
                           {"mediaType", std::string(kBundleMediaType)},
                           {"treeSize", static_cast<int64_t>(tree_size)}})
      .Dump();
}

absl::StatusOr<Bundle> Bundle::Parse(std::string_view text) {
  auto json = Json::Parse(text);
  if (!json.ok()) return json.status();
  JsonReader r(*json, "bundle");
  if (auto st = r.CheckKeys({"checkpoint", "envelope", "inclusionProof",
                             "leafIndex", "mediaType", "treeSize"});
      !st.ok()) {
    return st;
  }
  auto media = r.String("mediaType");
  if (!media.ok()) return media.status();
  if (*media != kBundleMediaType) {
    return absl::InvalidArgumentError("bundle: mediaType is not " +
                                      std::string(kBundleMediaType));
  }
  Bundle b;
  auto checkpoint = r.String("checkpoint");
  auto envelope = r.String("envelope");
  auto index = r.Int("leafIndex");
  auto size = r.Int("treeSize");
  auto proof = r.Array("inclusionProof");
  for (const absl::Status& st :
       {checkpoint.status(), envelope.status(), index.status(), size.status(),
        proof.status()}) {
    if (!st.ok()) return st;
  }
  if (*index < 0 || *size < 0) {
    return absl::InvalidArgumentError("bundle: negative index or size");
  }
  b.checkpoint = *std::move(checkpoint);
  b.envelope = *std::move(envelope);
  b.leaf_index = static_cast<uint64_t>(*index);
  b.tree_size = static_cast<uint64_t>(*size);
  for (const Json& h : **proof) {
    auto raw = h.is_string() ? Base64Decode(h.as_string()) : std::nullopt;
    if (!raw || raw->size() != kSha256Bytes) {
      return absl::InvalidArgumentError(
          "bundle: inclusionProof holds base64 SHA-256 hashes");
    }
    b.inclusion_proof.push_back(*std::move(raw));
  }
  return b;
}

absl::StatusOr<VerifiedCertificate> VerifyBundle(
    const Bundle& bundle, std::span<const PublicKey> keys) {
  auto envelope = Envelope::Parse(bundle.envelope);
  if (!envelope.ok()) return envelope.status();
  // A serialisation we would not write is refused: the leaf covers bytes.
  if (envelope->Serialize() != bundle.envelope) {
    return absl::InvalidArgumentError("bundle: envelope is not canonical JSON");
  }
  auto signer = VerifyEnvelope(*envelope, keys);
  if (!signer.ok()) return signer.status();
  if (envelope->payload_type != kInTotoPayloadType) {
    return absl::PermissionDeniedError(
        "the envelope's payloadType is not application/vnd.in-toto+json");
  }
  auto record = ParseStatement(envelope->payload);
  if (!record.ok())
    return Denied("the signed statement is invalid", record.status());
  if (!(*signer)->info().ValidAt(record->completed_us)) {
    return absl::PermissionDeniedError(
        "the envelope's key was not valid at the completion time");
  }
  auto opened = OpenCheckpoint(bundle.checkpoint, keys);
  if (!opened.ok()) return opened.status();
  if (opened->checkpoint.size != bundle.tree_size) {
    return absl::PermissionDeniedError(
        "the checkpoint's tree size differs from the bundle's treeSize");
  }
  VerifiedCertificate out;
  out.leaf_hash = CertificateLeafHash(bundle.envelope);
  if (auto st =
          VerifyInclusion(bundle.leaf_index, bundle.tree_size, out.leaf_hash,
                          bundle.inclusion_proof, opened->checkpoint.root_hash);
      !st.ok()) {
    return Denied("the certificate is not in the signed log", st);
  }
  out.record = *std::move(record);
  out.envelope_key_id = (*signer)->key_id();
  out.checkpoint = std::move(opened->checkpoint);
  out.leaf_index = bundle.leaf_index;
  return out;
}

}  // namespace lethe::cert

#include "cert/dsse.h"

#include "absl/strings/str_cat.h"
#include "cert/encoding.h"
#include "cert/json.h"

namespace lethe::cert {

std::string Pae(std::string_view type, std::string_view body) {
  std::string out = absl::StrCat("DSSEv1 ", type.size(), " ");
  out.append(type);
  absl::StrAppend(&out, " ", body.size(), " ");
  out.append(body);
  return out;
}

std::string Envelope::Serialize() const {
  Json::Array sigs;
  for (const DsseSignature& s : signatures) {
    sigs.push_back(
        Json::Object{{"keyid", s.keyid}, {"sig", Base64Encode(s.sig)}});
  }
  return Json(Json::Object{{"payload", Base64Encode(payload)},
                           {"payloadType", payload_type},
                           {"signatures", std::move(sigs)}})
      .Dump();
}

absl::StatusOr<Envelope> Envelope::Parse(std::string_view text) {
  auto json = Json::Parse(text);
  if (!json.ok()) return json.status();
  JsonReader r(*json, "envelope");
  if (auto st = r.CheckKeys({"payload", "payloadType", "signatures"});
      !st.ok()) {
    return st;
  }
  auto payload = r.String("payload");
  if (!payload.ok()) return payload.status();
  auto type = r.String("payloadType");
  if (!type.ok()) return type.status();
  auto sigs = r.Array("signatures");
  if (!sigs.ok()) return sigs.status();
  Envelope env;
  auto raw = Base64Decode(*payload);
  if (!raw)
    return absl::InvalidArgumentError("envelope: payload is not base64");
  env.payload = *std::move(raw);
  env.payload_type = *std::move(type);
  for (const Json& s : **sigs) {
    JsonReader sr(s, "envelope signature");
    if (auto st = sr.CheckKeys({"keyid", "sig"}); !st.ok()) return st;
    auto keyid = sr.String("keyid");
    if (!keyid.ok()) return keyid.status();
    auto sig = sr.String("sig");
    if (!sig.ok()) return sig.status();
    auto sig_raw = Base64Decode(*sig);
    if (!sig_raw) {
      return absl::InvalidArgumentError("envelope: sig is not base64");
    }
    env.signatures.push_back({*std::move(keyid), *std::move(sig_raw)});
  }
  if (env.signatures.empty()) {
    return absl::InvalidArgumentError("envelope: no signatures");
  }
  return env;
}

Envelope SignEnvelope(std::string_view payload_type, std::string_view payload,
                      const PrivateKey& key) {
  Envelope env;
  env.payload_type = std::string(payload_type);
  env.payload = std::string(payload);
  env.signatures.push_back(
      {key.public_key().key_id(), key.Sign(Pae(payload_type, payload))});
  return env;
}

absl::StatusOr<const PublicKey*> VerifyEnvelope(
    const Envelope& envelope, std::span<const PublicKey> keys) {
  const std::string pae = Pae(envelope.payload_type, envelope.payload);
  bool known = false;
  for (const DsseSignature& s : envelope.signatures) {
    const PublicKey* key = FindKey(keys, s.keyid);
    if (key == nullptr) continue;
    known = true;
    if (key->Verify(pae, s.sig)) return key;
  }
  return absl::PermissionDeniedError(
      known ? "the envelope signature does not verify: the certificate was "
              "altered"
            : "the envelope is signed by none of the given keys (keyid "
              "mismatch): pass the public key that signed it");
}

}  // namespace lethe::cert

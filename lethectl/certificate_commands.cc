// certificate get/list, checkpoint, keys list: CertificateService; and the
// offline commands verify and keys generate, which use cert/ and no server.
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/file.h"
#include "base/hex.h"
#include "cert/bundle.h"
#include "cert/dsse.h"
#include "cert/keys.h"
#include "cert/statement.h"
#include "google/protobuf/util/time_util.h"
#include "lethe/v1/certificate.grpc.pb.h"
#include "lethectl/commands.h"

namespace lethe::cli {
namespace {

using ::lethe::v1::CertificateService;

std::unique_ptr<CertificateService::Stub> Stub(const Invocation& inv) {
  return CertificateService::NewStub(inv.connection.channel());
}

// The statement inside an envelope as plain words, unverified.
std::string DescribeEnvelope(const std::string& envelope) {
  auto parsed = cert::Envelope::Parse(envelope);
  if (!parsed.ok()) {
    return absl::StrCat(
        "(the envelope does not parse: ", parsed.status().message(), ")\n");
  }
  auto record = cert::ParseStatement(parsed->payload);
  if (!record.ok()) {
    return absl::StrCat(
        "(the statement does not parse: ", record.status().message(), ")\n");
  }
  return cert::Describe(*record);
}

std::string CertificateText(const v1::Certificate& c) {
  return absl::StrCat(
      Field("request", c.request_id()),
      Field("leaf index", absl::StrCat(c.leaf_index())),
      Field("leaf hash", base::HexEncode(c.leaf_hash())),
      Field("key id", c.key_id()), Field("issued", FormatTime(c.issue_time())),
      Field("models", absl::StrJoin(c.model_ids(), ", ")),
      "\nStatement (not verified here: write a --bundle and run lethectl "
      "verify):\n",
      DescribeEnvelope(c.envelope()));
}

absl::Status WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::PermissionDeniedError("cannot write " + path);
  out << data;
  out.close();
  if (!out) return absl::DataLossError("writing " + path + " failed");
  return absl::OkStatus();
}

// The newest checkpoint that covers `certificate`. Workers sign one right
// after issuing, so one that does not cover it yet soon will: asks again for
// up to kCoverWait.
constexpr absl::Duration kCoverWait = absl::Seconds(15);

Outcome CoveringCheckpoint(const Invocation& inv,
                           CertificateService::Stub& stub,
                           const v1::Certificate& certificate,
                           v1::Checkpoint* checkpoint) {
  const absl::Time deadline = absl::Now() + kCoverWait;
  while (true) {
    auto context = inv.connection.NewContext(/*streaming=*/false);
    grpc::Status status = stub.GetCheckpoint(
        context.get(), v1::GetCheckpointRequest(), checkpoint);
    if (!status.ok() && status.error_code() != grpc::StatusCode::NOT_FOUND) {
      return Outcome::Rpc(status);
    }
    if (status.ok() && certificate.leaf_index() < checkpoint->tree_size()) {
      return Outcome::Ok();
    }
    if (absl::Now() >= deadline) {
      return Outcome::Rpc(grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrCat(
              "no signed checkpoint covers leaf ", certificate.leaf_index(),
              " yet (newest: ", status.ok() ? checkpoint->tree_size() : 0,
              " leaves); workers with signing keys sign one after "
              "issuing: check that one runs, then retry")));
    }
    absl::SleepFor(absl::Milliseconds(250));
  }
}

// The certificate of `id`, the newest checkpoint that covers it and the
// inclusion proof under it, as a bundle.
Outcome FetchBundle(const Invocation& inv, CertificateService::Stub& stub,
                    const v1::Certificate& certificate, cert::Bundle* out) {
  v1::Checkpoint checkpoint;
  if (Outcome covered = CoveringCheckpoint(inv, stub, certificate, &checkpoint);
      covered.exit_code != kExitOk) {
    return covered;
  }
  v1::GetInclusionProofRequest request;
  request.set_leaf_index(certificate.leaf_index());
  request.set_tree_size(checkpoint.tree_size());
  v1::InclusionProof proof;
  auto context = inv.connection.NewContext(/*streaming=*/false);
  grpc::Status status = stub.GetInclusionProof(context.get(), request, &proof);
  if (!status.ok()) return Outcome::Rpc(status);
  out->envelope = certificate.envelope();
  out->checkpoint = checkpoint.note();
  out->leaf_index = static_cast<uint64_t>(certificate.leaf_index());
  out->tree_size = static_cast<uint64_t>(checkpoint.tree_size());
  out->inclusion_proof.assign(proof.hashes().begin(), proof.hashes().end());
  return Outcome::Ok();
}

Outcome GetCertificate(const Invocation& inv) {
  v1::GetCertificateRequest request;
  request.set_request_id(inv.flags.positionals()[0]);
  v1::Certificate certificate;
  auto stub = Stub(inv);
  auto context = inv.connection.NewContext(/*streaming=*/false);
  grpc::Status status =
      stub->GetCertificate(context.get(), request, &certificate);
  if (!status.ok()) return Outcome::Rpc(status);
  const std::string bundle_file = inv.flags.Get("bundle");
  if (!bundle_file.empty()) {
    cert::Bundle bundle;
    Outcome fetched = FetchBundle(inv, *stub, certificate, &bundle);
    if (fetched.exit_code != kExitOk) return fetched;
    if (auto st = WriteFile(bundle_file, bundle.Serialize() + "\n"); !st.ok()) {
      return Outcome::Local(st.message());
    }
    std::cerr << "lethectl: wrote " << bundle_file << " (tree size "
              << bundle.tree_size << "); check it with: lethectl verify "
              << bundle_file << " --key PUBLIC_KEY.pem\n";
  }
  inv.printer.Print(certificate, CertificateText(certificate));
  return Outcome::Ok();
}

Outcome ListCertificates(const Invocation& inv) {
  FlagReader reader(inv.flags);
  v1::ListCertificatesRequest request;
  request.set_model_id(inv.flags.Get("model"));
  if (auto after = ReadTime(reader, "after")) {
    *request.mutable_issued_after() = *after;
  }
  if (auto before = ReadTime(reader, "before")) {
    *request.mutable_issued_before() = *before;
  }
  if (!reader.ok()) return Outcome::FromStatus(reader.status());
  auto stub = Stub(inv);
  return RunList<v1::ListCertificatesRequest, v1::ListCertificatesResponse>(
      inv, std::move(request),
      [&](grpc::ClientContext* c, const auto& req, auto* resp) {
        return stub->ListCertificates(c, req, resp);
      },
      [](const v1::ListCertificatesResponse& response) {
        std::string rows;
        for (const v1::Certificate& c : response.certificates()) {
          absl::StrAppend(
              &rows, absl::StrFormat("%6d  %-36s  %-24s  %s\n", c.leaf_index(),
                                     c.request_id(), FormatTime(c.issue_time()),
                                     absl::StrJoin(c.model_ids(), ",")));
        }
        return rows;
      });
}

Outcome GetCheckpoint(const Invocation& inv) {
  FlagReader reader(inv.flags);
  v1::GetCheckpointRequest request;
  if (auto size = reader.Int("size", 1, INT64_MAX))
    request.set_tree_size(*size);
  if (!reader.ok()) return Outcome::FromStatus(reader.status());
  v1::Checkpoint checkpoint;
  auto context = inv.connection.NewContext(/*streaming=*/false);
  grpc::Status status =
      Stub(inv)->GetCheckpoint(context.get(), request, &checkpoint);
  if (!status.ok()) return Outcome::Rpc(status);
  // The note exactly as signed, so that it can be saved and compared.
  inv.printer.Print(checkpoint, checkpoint.note());
  return Outcome::Ok();
}

std::string Validity(const v1::PublicKey& key) {
  return absl::StrCat(
      key.has_not_before() ? FormatTime(key.not_before()) : "unbounded", " .. ",
      key.has_not_after() ? FormatTime(key.not_after()) : "unbounded");
}

Outcome ListKeys(const Invocation& inv) {
  v1::GetPublicKeysResponse response;
  auto context = inv.connection.NewContext(/*streaming=*/false);
  grpc::Status status = Stub(inv)->GetPublicKeys(
      context.get(), v1::GetPublicKeysRequest(), &response);
  if (!status.ok()) return Outcome::Rpc(status);
  std::string text;
  for (const v1::PublicKey& key : response.keys()) {
    absl::StrAppend(&text, Field("key id", key.key_id()),
                    Field("name", key.name()), Field("valid", Validity(key)),
                    Field("verifier key", key.verifier_key()),
                    Field("jwk", key.jwk()), key.pem(), "\n");
  }
  if (response.keys().empty()) {
    text = "the server has no signing keys configured (--signing-keys)\n";
  }
  inv.printer.Print(response, text);
  return Outcome::Ok();
}

Outcome GenerateKey(const Invocation& inv) {
  FlagReader reader(inv.flags);
  const std::string prefix = reader.Required("out");
  std::optional<int64_t> days = reader.Int("valid-days", 1, 36500);
  if (!reader.ok()) return Outcome::FromStatus(reader.status());
  cert::KeyInfo info;
  info.name =
      inv.flags.Get("name", absl::string_view(cert::kDefaultKeyName.data(),
                                              cert::kDefaultKeyName.size()));
  if (days) {
    info.not_before_us = absl::ToUnixMicros(absl::Now());
    info.not_after_us = info.not_before_us + *days * 86400 * int64_t{1000000};
  }
  auto key = cert::GenerateKeyFiles(prefix, info);
  if (!key.ok()) return Outcome::FromStatus(key.status());
  std::cout << key->public_key().key_id() << "\n";
  std::cerr << "lethectl: wrote " << prefix << ".key (keep it secret; give it "
            << "to lethe --signing-keys) and " << prefix
            << ".pub (give it to auditors)\n";
  return Outcome::Ok();
}

// The public keys of the --key files.
absl::StatusOr<std::vector<cert::PublicKey>> ReadKeys(
    const ParsedFlags& flags) {
  std::vector<cert::PublicKey> keys;
  for (const std::string& path : flags.GetList("key")) {
    auto pem = base::ReadFile(path);
    if (!pem.ok()) return pem.status();
    auto key = cert::PublicKey::FromPem(*pem);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", key.status().message()));
    }
    keys.push_back(*std::move(key));
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(
        "--key PUBLIC_KEY.pem is required (repeat it for rotated keys)");
  }
  return keys;
}

Outcome Verify(const Invocation& inv) {
  auto keys = ReadKeys(inv.flags);
  if (!keys.ok()) return Outcome::FromStatus(keys.status());
  const std::string& path = inv.flags.positionals()[0];
  auto text = base::ReadFile(path);
  if (!text.ok()) return Outcome::Local(text.status().message());
  const auto failed = [&](const absl::Status& st) {
    return Outcome{kExitVerifyFailed,
                   absl::StrCat("NOT VERIFIED: ", path, ": ", st.message())};
  };
  std::string_view json = *text;
  while (!json.empty() && json.back() == '\n') json.remove_suffix(1);
  auto bundle = cert::Bundle::Parse(json);
  if (!bundle.ok()) return failed(bundle.status());
  auto verified = cert::VerifyBundle(*bundle, *keys);
  if (!verified.ok()) return failed(verified.status());
  std::cout << absl::StrCat(
      "VERIFIED ", path, "\n", "  envelope signature: valid, key ",
      verified->envelope_key_id, "\n",
      "  checkpoint: ", verified->checkpoint.origin, ", tree size ",
      verified->checkpoint.size, ", root ",
      base::HexEncode(verified->checkpoint.root_hash), " (signature valid)\n",
      "  inclusion: leaf ", verified->leaf_index, " = ",
      base::HexEncode(verified->leaf_hash),
      " (recomputed from the envelope) is in that tree\n\n",
      cert::Describe(verified->record));
  std::cout.flush();
  return Outcome::Ok();
}

}  // namespace

std::vector<Command> CertificateCommands() {
  std::vector<FlagSpec> list_flags = {
      {"model", "ID", "only certificates naming this model"},
      {"after", "RFC3339", "only certificates issued at or after this time"},
      {"before", "RFC3339", "only certificates issued before this time"},
  };
  for (const FlagSpec& flag : PageFlags()) list_flags.push_back(flag);
  return {
      {"certificate get",
       "REQUEST_ID [--bundle FILE]",
       "show a request's completion certificate (--bundle: save it to verify)",
       1,
       {{"bundle", "FILE", "write the certificate bundle (JSON) here"}},
       GetCertificate},
      {"certificate list", "[flags]",
       "list completion certificates, newest first", 0, std::move(list_flags),
       ListCertificates},
      {"checkpoint",
       "[--size N]",
       "print the log's latest signed checkpoint (or the one at size N)",
       0,
       {{"size", "N", "the checkpoint signed at this tree size"}},
       GetCheckpoint},
      {"keys list",
       "",
       "show the server's public signing keys",
       0,
       {},
       ListKeys},
      {"keys generate",
       "--out PREFIX [--name N] [--valid-days D]",
       "create an Ed25519 signing key: PREFIX.key (0600) and PREFIX.pub "
       "(offline)",
       0,
       {{"out", "PREFIX", "path prefix of the two files"},
        {"name", "N", "checkpoint key name, no spaces or '+' (default lethe)"},
        {"valid-days", "D", "valid from now for D days (default: unbounded)"}},
       GenerateKey},
      {"verify",
       "BUNDLE --key PUBLIC_KEY.pem [--key ...]",
       "check a certificate bundle offline (exit 0 only if all checks hold)",
       1,
       {{"key", "FILE", "a trusted public key (PEM); repeat for rotated keys",
         true}},
       Verify},
  };
}

}  // namespace lethe::cli

#include "server/certificate_service.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cert/checkpoint.h"
#include "server/convert.h"
#include "storage/hash.h"
#include "validate/validate.h"

namespace lethe::server {
namespace {

using storage::Role;

void ToProto(const storage::IssuedCertificate& c, v1::Certificate* out) {
  out->set_request_id(c.request_id);
  out->set_envelope(c.envelope);
  out->set_leaf_index(c.leaf_index);
  out->set_leaf_hash(c.leaf_hash);
  out->set_key_id(c.key_id);
  for (const auto& id : c.model_ids) out->add_model_ids(id);
  SetTimestamp(c.issued_us, out->mutable_issue_time());
}

void ToProto(const storage::StoredCheckpoint& cp, v1::Checkpoint* out) {
  out->set_note(cp.note);
  out->set_tree_size(cp.tree_size);
  out->set_root_hash(cp.root_hash);
  out->set_key_id(cp.key_id);
  SetTimestamp(cp.signed_us, out->mutable_sign_time());
}

void ToProto(const cert::PublicKey& key, v1::PublicKey* out) {
  out->set_key_id(key.key_id());
  out->set_name(key.info().name);
  out->set_pem(key.Pem());
  out->set_jwk(key.Jwk());
  out->set_verifier_key(cert::VerifierKey(key.info().name, key));
  if (key.info().not_before_us != 0) {
    SetTimestamp(key.info().not_before_us, out->mutable_not_before());
  }
  if (key.info().not_after_us != 0) {
    SetTimestamp(key.info().not_after_us, out->mutable_not_after());
  }
}

// Page tokens as convert.h's, but the store's cursor is a leaf index rather
// than a UUID: "c1|<leaf index>|<filter fingerprint hash>", base64url.
std::string ListFingerprint(const v1::ListCertificatesRequest& req) {
  return storage::ToHex(
             storage::Sha256(absl::StrCat("certificates|", req.model_id(), "|",
                                          Micros(req.issued_after()), "|",
                                          Micros(req.issued_before()))))
      .substr(0, 16);
}

std::string EncodeToken(const storage::PageCursor& cursor,
                        const std::string& fingerprint) {
  return absl::WebSafeBase64Escape(
      absl::StrCat("c1|", cursor.id, "|", fingerprint));
}

absl::StatusOr<std::optional<storage::PageCursor>> DecodeToken(
    const std::string& token, const std::string& fingerprint) {
  auto parts = PageTokenFields(token, "c1", 3);
  if (!parts.ok()) return parts.status();
  if (!parts->has_value()) return std::optional<storage::PageCursor>();
  const std::vector<std::string>& f = **parts;
  int64_t leaf = 0;
  if (!absl::SimpleAtoi(f[1], &leaf) || leaf < 0 || f[2] != fingerprint) {
    return InvalidPageToken();
  }
  return std::optional<storage::PageCursor>(
      storage::PageCursor{0, std::to_string(leaf)});
}

absl::StatusOr<storage::CertificateFilter> Filter(
    const v1::ListCertificatesRequest& req) {
  storage::CertificateFilter filter;
  if (!req.model_id().empty()) {
    if (auto st = CheckUuid("model_id", req.model_id()); !st.ok()) return st;
    filter.model_id = req.model_id();
  }
  filter.issued_after_us = Micros(req.issued_after());
  filter.issued_before_us = Micros(req.issued_before());
  return filter;
}

}  // namespace

grpc::ServerUnaryReactor* CertificateServiceImpl::GetCertificate(
    grpc::CallbackServerContext* ctx, const v1::GetCertificateRequest* req,
    v1::Certificate* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal = deps_->auth->Authorize(
        md, {Role::kAuditor, Role::kOperator, Role::kSubmitter});
    if (!principal.ok()) return principal.status();
    if (auto st = CheckUuid("request_id", req->request_id()); !st.ok()) {
      return st;
    }
    auto issued = options_.store->Get(req->request_id());
    if (!issued.ok()) return issued.status();
    // A submitter sees only its own requests; others look absent, so that
    // request ids of other clients cannot be probed.
    if (principal->role == Role::kSubmitter &&
        issued->client_key_id != principal->key_id) {
      return absl::NotFoundError(
          absl::StrCat("no certificate for erasure request ", req->request_id(),
                       " submitted by this API key"));
    }
    ToProto(*issued, resp);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* CertificateServiceImpl::ListCertificates(
    grpc::CallbackServerContext* ctx, const v1::ListCertificatesRequest* req,
    v1::ListCertificatesResponse* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal =
        deps_->auth->Authorize(md, {Role::kAuditor, Role::kOperator});
    if (!principal.ok()) return principal.status();
    auto filter = Filter(*req);
    if (!filter.ok()) return filter.status();
    auto size = PageSize(req->page_size());
    if (!size.ok()) return size.status();
    const std::string fp = ListFingerprint(*req);
    auto cursor = DecodeToken(req->page_token(), fp);
    if (!cursor.ok()) return cursor.status();
    auto page = options_.store->List(*filter, storage::Page{*size, *cursor});
    if (!page.ok()) return page.status();
    for (const auto& c : page->rows) ToProto(c, resp->add_certificates());
    if (page->next) resp->set_next_page_token(EncodeToken(*page->next, fp));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* CertificateServiceImpl::GetInclusionProof(
    grpc::CallbackServerContext* ctx, const v1::GetInclusionProofRequest* req,
    v1::InclusionProof* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal = deps_->auth->Authenticate(md);
    if (!principal.ok()) return principal.status();
    auto proof =
        options_.store->InclusionProof(req->leaf_index(), req->tree_size());
    if (!proof.ok()) return proof.status();
    resp->set_leaf_index(req->leaf_index());
    resp->set_tree_size(req->tree_size());
    for (const auto& h : *proof) resp->add_hashes(h);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* CertificateServiceImpl::GetConsistencyProof(
    grpc::CallbackServerContext* ctx, const v1::GetConsistencyProofRequest* req,
    v1::ConsistencyProof* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal = deps_->auth->Authenticate(md);
    if (!principal.ok()) return principal.status();
    auto proof =
        options_.store->ConsistencyProof(req->first_size(), req->second_size());
    if (!proof.ok()) return proof.status();
    resp->set_first_size(req->first_size());
    resp->set_second_size(req->second_size());
    for (const auto& h : *proof) resp->add_hashes(h);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* CertificateServiceImpl::GetCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::GetCheckpointRequest* req,
    v1::Checkpoint* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal = deps_->auth->Authenticate(md);
    if (!principal.ok()) return principal.status();
    if (req->tree_size() < 0) {
      return absl::InvalidArgumentError(
          "tree_size must be 0 (the latest checkpoint) or a positive size");
    }
    auto cp = req->tree_size() == 0
                  ? options_.store->NewestCheckpoint()
                  : options_.store->CheckpointAt(req->tree_size());
    if (!cp.ok()) return cp.status();
    ToProto(*cp, resp);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* CertificateServiceImpl::GetPublicKeys(
    grpc::CallbackServerContext* ctx, const v1::GetPublicKeysRequest*,
    v1::GetPublicKeysResponse* resp) {
  return Offload(ctx, deps_, [this, resp](const auto& md) {
    auto principal = deps_->auth->Authenticate(md);
    if (!principal.ok()) return principal.status();
    for (const auto& key : *options_.public_keys) {
      ToProto(key, resp->add_keys());
    }
    return absl::OkStatus();
  });
}

}  // namespace lethe::server

#include "server/erasure_service.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/convert.h"
#include "server/subject.h"
#include "storage/hash.h"
#include "validate/validate.h"

namespace lethe::server {
namespace {

using storage::Role;

// A submitter key (a product backend) sees and cancels only the requests
// it submitted; operators, auditors and admins see all of them.
absl::Status CheckOwner(const Principal& principal,
                        const storage::ErasureRow& row) {
  if (principal.role != Role::kSubmitter ||
      principal.key_id == row.client_key_id) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "erasure request ", row.id, " was submitted with another API key"));
}

absl::Status CheckLegalGround(const v1::SubmitErasureRequest& req) {
  if (req.legal_ground() == v1::LEGAL_GROUND_UNSPECIFIED ||
      !v1::LegalGround_IsValid(req.legal_ground())) {
    return absl::InvalidArgumentError(
        "legal_ground is required: one of the LegalGround values other than "
        "LEGAL_GROUND_UNSPECIFIED");
  }
  if (auto st = CheckText("legal_reference", req.legal_reference(),
                          kMaxReferenceBytes,
                          req.legal_ground() == v1::LEGAL_GROUND_OTHER);
      !st.ok()) {
    return st;
  }
  return absl::OkStatus();
}

// An empty subject_salt is no salt: `optional` would say more, but
// protoc before 3.15 (Debian 12's python3-grpc-tools) rejects it in proto3.
bool HasClientSalt(const v1::SubmitErasureRequest& req) {
  return !req.subject_salt().empty();
}

absl::Status CheckClientSalt(const v1::SubmitErasureRequest& req) {
  if (!HasClientSalt(req) || req.subject_salt().size() == kSubjectSaltBytes) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "subject_salt is ", req.subject_salt().size(),
      " bytes; when given it must be exactly ", kSubjectSaltBytes,
      " random bytes from a CSPRNG (or leave it out and keep the salt that "
      "the response returns)"));
}

// The body a replay must match, without the raw subject id. A client's
// salt is part of it through the commitment it makes: a retry with another
// salt would get back a commitment its salt does not open. The commitment
// is stored anyway, so the hash keeps the salt as secret as before; and
// legal_reference holds no newline (CheckText), so the two forms cannot
// collide.
std::string Body(const storage::SubmitParams& p, bool client_salt) {
  std::string body =
      absl::StrCat("lethe-submit/v1\n", storage::ToHex(p.subject_key), "\n",
                   absl::StrJoin(p.scope_model_ids, ","), "\n", p.legal_ground,
                   "\n", p.legal_reference);
  if (client_salt) {
    absl::StrAppend(&body, "\nclient-salted ",
                    storage::ToHex(p.subject_commitment));
  }
  return body;
}

// Fingerprint of the filters a page token is bound to.
std::string ListFingerprint(const v1::ListErasuresRequest& req) {
  return absl::StrCat("erasures|", req.state(), "|", req.model_id(), "|",
                      Micros(req.created_after()), "|",
                      Micros(req.created_before()));
}

// A cheap change detector for WatchErasure.
std::string Fingerprint(const storage::ErasureRow& row) {
  std::string fp = absl::StrCat(row.state, "|", row.updated_us);
  for (const auto& t : row.tasks) {
    absl::StrAppend(&fp, "|", t.state, ":", t.attempts, ":", t.updated_us);
  }
  return fp;
}

// Streams an erasure's states until a terminal one. Owned by a shared_ptr
// that the executor tasks and the hub callback hold weakly, so nothing
// touches it after gRPC's OnDone.
class WatchReactor final : public grpc::ServerWriteReactor<v1::ErasureEvent>,
                           public std::enable_shared_from_this<WatchReactor> {
 public:
  WatchReactor(const Deps* deps, std::string id)
      : deps_(deps), id_(std::move(id)) {}

  // Copies the credentials here, on the gRPC thread: a client that cancels
  // before the queued Authorize runs makes OnCancel finish the call, and
  // gRPC frees the context after OnDone, maybe before Authorize runs.
  void Start(grpc::CallbackServerContext* ctx) {
    self_ = shared_from_this();
    std::weak_ptr<WatchReactor> weak = self_;
    AuthMetadata md = AuthMetadata::From(*ctx);
    std::optional<absl::Status> refused = deps_->auth->Precheck(md);
    if (!refused && !deps_->executor->TrySubmit([weak, md] {
          if (auto self = weak.lock()) self->Authorize(md);
        })) {
      refused = absl::ResourceExhaustedError(
          "the server is busy; retry with backoff");
    }
    if (refused) {
      std::lock_guard lock(mu_);
      FinishLocked(ToGrpc(*refused));
    }
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock lock(mu_);
    writing_ = false;
    if (!ok)
      return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED,
                                       "stream closed by the client"));
    if (terminal_sent_) return FinishLocked(grpc::Status::OK);
    if (recheck_) {
      recheck_ = false;
      ScheduleCheck();
    }
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  void OnDone() override {
    // gRPC may call OnDone while a reactor method holds mu_: release the
    // subscription and the last reference from the executor instead.
    deps_->executor->Submit([self = std::move(self_)] {
      uint64_t token;
      bool slot;
      {
        std::lock_guard lock(self->mu_);
        token = self->token_;
        slot = self->slot_;
      }
      if (token != 0) self->deps_->changes->Unsubscribe(token);
      if (slot) self->deps_->watches->Release(self->principal_.key_id);
    });
  }

 private:
  void Authorize(const AuthMetadata& md) {
    {
      std::lock_guard lock(mu_);
      if (finished_) return;  // cancelled while queued: spare the lookup
    }
    auto principal = deps_->auth->Authenticate(md);
    absl::Status st = principal.status();
    if (st.ok()) st = CheckUuid("id", id_);
    if (st.ok() && !deps_->watches->Acquire(principal->key_id)) {
      st = absl::ResourceExhaustedError(absl::StrCat(
          "API key ", principal->key_id,
          " has as many WatchErasure streams open as it may "
          "(--max-watches-per-key): close one, or poll GetErasure"));
    } else if (st.ok()) {
      std::lock_guard lock(mu_);
      if (finished_) {  // cancelled meanwhile; OnDone's task may have run
        deps_->watches->Release(principal->key_id);
        return;
      }
      principal_ = *principal;  // before any Check() runs
      md_ = md;
      slot_ = true;  // OnDone's task, which comes later, releases it
    }
    if (!st.ok()) {
      std::lock_guard lock(mu_);
      return FinishLocked(ToGrpc(st));
    }
    // Not under mu_: the hub calls OnChange under its own lock.
    std::weak_ptr<WatchReactor> weak = self_;
    const uint64_t token = deps_->changes->Subscribe(id_, [weak] {
      if (auto self = weak.lock()) self->OnChange();
    });
    std::unique_lock lock(mu_);
    token_ = token;
    if (finished_) {  // cancelled while subscribing: OnDone may have run
      lock.unlock();
      deps_->changes->Unsubscribe(token);
      return;
    }
    ScheduleCheck();
  }

  void OnChange() {
    std::lock_guard lock(mu_);
    if (writing_ || checking_) {
      recheck_ = true;
    } else {
      ScheduleCheck();
    }
  }

  // Requires mu_.
  void ScheduleCheck() {
    if (finished_) return;
    checking_ = true;
    std::weak_ptr<WatchReactor> weak = self_;
    deps_->executor->Submit([weak] {
      if (auto self = weak.lock()) self->Check();
    });
  }

  void Check() {
    // The key again, each poll: a stream of a key revoked since it opened
    // ends within the key cache's lifetime (--key-cache-seconds) and a poll.
    auto principal = deps_->auth->Reauthenticate(md_);
    auto row = deps_->erasures->Get(id_);
    std::lock_guard lock(mu_);
    checking_ = false;
    if (finished_) return;
    if (!principal.ok() && !absl::IsUnavailable(principal.status())) {
      return FinishLocked(ToGrpc(principal.status()));
    }
    if (!row.ok()) {
      // A lost database is transient for a watcher: keep waiting.
      if (absl::IsUnavailable(row.status())) return;
      return FinishLocked(ToGrpc(row.status(), deps_->logger));
    }
    if (auto owner = CheckOwner(principal_, *row); !owner.ok()) {
      return FinishLocked(ToGrpc(owner));
    }
    const std::string fp = Fingerprint(*row);
    if (fp == last_fingerprint_) {
      if (recheck_) {
        recheck_ = false;
        ScheduleCheck();
      }
      return;
    }
    last_fingerprint_ = fp;
    event_.Clear();
    ToProto(*row, event_.mutable_erasure());
    terminal_sent_ = storage::IsTerminalErasureState(row->state);
    writing_ = true;
    StartWrite(&event_);
  }

  // Requires mu_.
  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  const Deps* deps_;
  const std::string id_;
  Principal principal_;  // set in Authorize, before the first Check
  AuthMetadata md_;      // likewise: re-checked on every Check
  std::shared_ptr<WatchReactor> self_;
  uint64_t token_ = 0;
  std::mutex mu_;
  v1::ErasureEvent event_;        // guarded by mu_ while no write runs
  std::string last_fingerprint_;  // guarded by mu_
  bool writing_ = false;          // guarded by mu_
  bool checking_ = false;         // guarded by mu_
  bool recheck_ = false;          // guarded by mu_
  bool terminal_sent_ = false;    // guarded by mu_
  bool finished_ = false;         // guarded by mu_
  bool slot_ = false;             // holds a WatchSlots slot; guarded by mu_
};

// One line per state the submission created; the subject stays out of it.
void LogSubmitted(const observability::Logger& log,
                  const storage::SubmitResult& result,
                  const std::string& key_id) {
  const storage::ErasureRow& e = result.erasure;
  if (result.replayed) {
    log.Debug({.request_id = e.id}, "erasure submission replayed",
              {{"state", e.state}, {"key_id", key_id}});
    return;
  }
  log.Info({.request_id = e.id},
           e.state == "NOTHING_TO_ERASE" ? "erasure has nothing to erase"
                                         : "erasure submitted",
           {{"state", e.state},
            {"tasks", e.tasks.size()},
            {"legal_ground", e.legal_ground},
            {"key_id", key_id}});
}

}  // namespace

absl::StatusOr<storage::SubmitParams> PrepareSubmission(
    const v1::SubmitErasureRequest& req, const std::string& client_key_id,
    const std::string& server_secret, const std::string& server_salt) {
  if (auto st = CheckSubjectId(req.subject_id()); !st.ok()) return st;
  if (auto st = CheckClientSalt(req); !st.ok()) return st;
  if (auto st = CheckLegalGround(req); !st.ok()) return st;
  if (auto st = CheckIdempotencyKey(req.idempotency_key()); !st.ok()) {
    return st;
  }
  if (req.model_ids_size() > static_cast<int>(kMaxScopeModels)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model_ids: at most ", kMaxScopeModels, " ids"));
  }
  std::vector<std::string> scope;
  for (int i = 0; i < req.model_ids_size(); ++i) {
    if (auto st =
            CheckUuid(absl::StrCat("model_ids[", i, "]"), req.model_ids(i));
        !st.ok()) {
      return st;
    }
    scope.push_back(req.model_ids(i));
  }
  std::sort(scope.begin(), scope.end());
  scope.erase(std::unique(scope.begin(), scope.end()), scope.end());

  storage::SubmitParams p;
  p.client_key_id = client_key_id;
  p.idempotency_key = req.idempotency_key();
  p.subject_key = SubjectKey(server_secret, req.subject_id());
  p.subject_commitment = SubjectCommitment(
      HasClientSalt(req) ? req.subject_salt() : server_salt, req.subject_id());
  p.legal_ground = LegalGroundName(req.legal_ground());
  p.legal_reference = req.legal_reference();
  p.scope_model_ids = std::move(scope);
  const std::string body = Body(p, HasClientSalt(req));
  p.body_sha256 = storage::HmacSha256(server_secret, body);
  p.legacy_body_sha256 = storage::Sha256(body);
  return p;
}

// The intake path blocks no thread: with the key in the authenticator's
// cache the call is checked on the gRPC thread that received it and queued
// for the store's next batch; one of the store's finisher threads completes
// it once that batch committed. Only a key not yet cached goes through the
// executor first (one database lookup).
grpc::ServerUnaryReactor* ErasureServiceImpl::SubmitErasure(
    grpc::CallbackServerContext* ctx, const v1::SubmitErasureRequest* req,
    v1::SubmitErasureResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  AuthMetadata md = AuthMetadata::From(*ctx);
  auto cached = deps_->auth->AuthorizeCached(md, {Role::kSubmitter});
  if (cached) {
    StartSubmit(reactor, *std::move(cached), req, resp);
  } else if (!deps_->executor->TrySubmit(
                 [this, md = std::move(md), reactor, req, resp] {
                   StartSubmit(reactor,
                               deps_->auth->Authorize(md, {Role::kSubmitter}),
                               req, resp);
                 })) {
    reactor->Finish(Busy());
  }
  return reactor;
}

void ErasureServiceImpl::StartSubmit(grpc::ServerUnaryReactor* reactor,
                                     absl::StatusOr<Principal> principal,
                                     const v1::SubmitErasureRequest* req,
                                     v1::SubmitErasureResponse* resp) {
  if (!principal.ok()) return reactor->Finish(ToGrpc(principal.status()));
  std::string server_salt = storage::RandomBytes(kSubjectSaltBytes);
  auto params = PrepareSubmission(*req, principal->key_id, deps_->server_secret,
                                  server_salt);
  if (!params.ok()) return reactor->Finish(ToGrpc(params.status()));
  params->scope_dataset_ids = principal->dataset_ids;
  // A client's salt goes back in every answer, replays included (the
  // stored commitment is the one it opens); ours only in the answer that
  // created the request: it is not stored, and a replay drew another.
  const bool client_salt = HasClientSalt(*req);
  std::string salt = client_salt ? req->subject_salt() : server_salt;
  deps_->erasures->SubmitAsync(
      *std::move(params),
      [deps = deps_, reactor, resp, key_id = principal->key_id, client_salt,
       salt = std::move(salt)](absl::StatusOr<storage::SubmitResult> result) {
        if (!result.ok()) {
          return reactor->Finish(ToGrpc(result.status(), deps->logger));
        }
        LogSubmitted(*deps->logger, *result, key_id);
        ToProto(result->erasure, resp->mutable_erasure());
        resp->set_replayed(result->replayed);
        if (client_salt || !result->replayed) resp->set_subject_salt(salt);
        reactor->Finish(grpc::Status::OK);
      });
}

grpc::ServerUnaryReactor* ErasureServiceImpl::GetErasure(
    grpc::CallbackServerContext* ctx, const v1::GetErasureRequest* req,
    v1::Erasure* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal = deps_->auth->Authenticate(md);
    if (!principal.ok()) return principal.status();
    if (auto st = CheckUuid("id", req->id()); !st.ok()) return st;
    auto row = deps_->erasures->Get(req->id());
    if (!row.ok()) return row.status();
    if (auto st = CheckOwner(*principal, *row); !st.ok()) return st;
    ToProto(*row, resp);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ErasureServiceImpl::ListErasures(
    grpc::CallbackServerContext* ctx, const v1::ListErasuresRequest* req,
    v1::ListErasuresResponse* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal =
        deps_->auth->Authorize(md, {Role::kOperator, Role::kAuditor});
    if (!principal.ok()) return principal.status();
    storage::ErasureFilter filter;
    if (req->state() != v1::ERASURE_STATE_UNSPECIFIED) {
      if (!v1::ErasureState_IsValid(req->state())) {
        return absl::InvalidArgumentError("state is not a valid ErasureState");
      }
      filter.state = ErasureStateName(req->state());
    }
    if (!req->model_id().empty()) {
      if (auto st = CheckUuid("model_id", req->model_id()); !st.ok()) return st;
      filter.model_id = req->model_id();
    }
    filter.created_after_us = Micros(req->created_after());
    filter.created_before_us = Micros(req->created_before());
    auto size = PageSize(req->page_size());
    if (!size.ok()) return size.status();
    const std::string fp = ListFingerprint(*req);
    auto cursor = DecodePageToken(req->page_token(), fp);
    if (!cursor.ok()) return cursor.status();
    auto page = deps_->erasures->List(filter, storage::Page{*size, *cursor});
    if (!page.ok()) return page.status();
    for (const auto& row : page->rows) ToProto(row, resp->add_erasures());
    if (page->next) resp->set_next_page_token(EncodePageToken(*page->next, fp));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ErasureServiceImpl::CancelErasure(
    grpc::CallbackServerContext* ctx, const v1::CancelErasureRequest* req,
    v1::Erasure* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal = deps_->auth->Authorize(md, {Role::kSubmitter});
    if (!principal.ok()) return principal.status();
    if (auto st = CheckUuid("id", req->id()); !st.ok()) return st;
    // A product backend's key cancels only what it submitted.
    auto row = deps_->erasures->Cancel(
        req->id(), principal->key_id,
        principal->role == Role::kSubmitter ? principal->key_id : "");
    if (!row.ok()) return row.status();
    deps_->logger->Info({.request_id = row->id}, "erasure cancelled",
                        {{"state", row->state}, {"key_id", principal->key_id}});
    ToProto(*row, resp);
    return absl::OkStatus();
  });
}

bool WatchSlots::Acquire(const std::string& key_id) {
  std::lock_guard lock(mu_);
  int& open = open_[key_id];
  if (max_ > 0 && open >= max_) {
    if (open == 0) open_.erase(key_id);
    return false;
  }
  ++open;
  return true;
}

void WatchSlots::Release(const std::string& key_id) {
  std::lock_guard lock(mu_);
  auto it = open_.find(key_id);
  if (it != open_.end() && --it->second <= 0) open_.erase(it);
}

grpc::ServerWriteReactor<v1::ErasureEvent>* ErasureServiceImpl::WatchErasure(
    grpc::CallbackServerContext* ctx, const v1::WatchErasureRequest* req) {
  auto reactor = std::make_shared<WatchReactor>(deps_, req->id());
  reactor->Start(ctx);
  return reactor.get();
}

}  // namespace lethe::server

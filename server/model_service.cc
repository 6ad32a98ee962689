#include "server/model_service.h"

#include <cmath>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/convert.h"
#include "storage/hash.h"
#include "storage/spool.h"
#include "validate/validate.h"

namespace lethe::server {
namespace {

using storage::Role;

absl::Status Invalid(const std::string& msg) {
  return absl::InvalidArgumentError(msg);
}

absl::Status ValidateRecipe(const v1::TrainingRecipe& r) {
  if (r.optimizer() != v1::OPTIMIZER_SGD_MOMENTUM &&
      r.optimizer() != v1::OPTIMIZER_ADAM) {
    return Invalid("recipe.optimizer must be SGD_MOMENTUM or ADAM");
  }
  if (!(r.learning_rate() > 0 && r.learning_rate() <= 10)) {
    return Invalid("recipe.learning_rate must be in (0, 10]");
  }
  if (!(r.momentum() >= 0 && r.momentum() < 1)) {
    return Invalid("recipe.momentum must be in [0, 1)");
  }
  if (!(r.weight_decay() >= 0 && r.weight_decay() <= 1)) {
    return Invalid("recipe.weight_decay must be in [0, 1]");
  }
  if (r.epochs() < 1 || r.epochs() > 10000) {
    return Invalid("recipe.epochs must be in 1..10000");
  }
  if (r.batch_size() < 1 || r.batch_size() > 65536) {
    return Invalid("recipe.batch_size must be in 1..65536");
  }
  if (!v1::LearningRateSchedule_IsValid(r.schedule())) {
    return Invalid("recipe.schedule is not a valid LearningRateSchedule");
  }
  return absl::OkStatus();
}

bool Rate(double v) { return v >= 0 && v <= 10; }
bool Epochs(int v) { return v >= 0 && v <= 1000; }

// NEGGRAD_PLUS, SCRUB, RANDOM_LABEL and SALUN (FINETUNE's is checked with
// the head re-fit's below).
absl::Status ValidateMethodConfigs(const v1::UnlearningPolicy& p) {
  const v1::NegGradPlusConfig& n = p.neggrad_plus();
  if (!Epochs(n.epochs()) || !Rate(n.learning_rate()) ||
      !(n.beta() >= 0 && n.beta() < 1)) {
    return Invalid(
        "policy.neggrad_plus: epochs 0..1000, learning_rate in [0, 10], beta "
        "in [0, 1)");
  }
  const v1::ScrubConfig& s = p.scrub();
  if (!Epochs(s.epochs()) || !Epochs(s.max_epochs()) ||
      !Rate(s.learning_rate()) || !(s.alpha() >= 0 && s.alpha() <= 1000) ||
      !(s.gamma() >= 0 && s.gamma() <= 1000) ||
      !(s.temperature() >= 0 && s.temperature() <= 100)) {
    return Invalid(
        "policy.scrub: epochs and max_epochs 0..1000, learning_rate in "
        "[0, 10], alpha and gamma in [0, 1000], temperature in [0, 100]");
  }
  const v1::RandomLabelConfig& r = p.random_label();
  if (!Epochs(r.epochs()) || !Rate(r.learning_rate())) {
    return Invalid(
        "policy.random_label: epochs 0..1000, learning_rate in [0, 10]");
  }
  const v1::SalunConfig& u = p.salun();
  if (!Epochs(u.epochs()) || !Rate(u.learning_rate()) ||
      !(u.salient_fraction() >= 0 && u.salient_fraction() <= 1)) {
    return Invalid(
        "policy.salun: epochs 0..1000, learning_rate in [0, 10], "
        "salient_fraction in [0, 1]");
  }
  return absl::OkStatus();
}

// The gate's thresholds and the adaptive budget.
absl::Status ValidateGate(const v1::UnlearningPolicy& p) {
  if (!(p.max_mia_auc() == 0 ||
        (p.max_mia_auc() >= 0.5 && p.max_mia_auc() <= 1))) {
    return Invalid("policy.max_mia_auc must be 0 (off) or in [0.5, 1]");
  }
  if (!(p.gate_significance() >= 0 && p.gate_significance() <= 0.5)) {
    return Invalid("policy.gate_significance must be in [0, 0.5] (0 = 0.01)");
  }
  if (!(p.gate_margin() <= 0.5) || std::isnan(p.gate_margin())) {
    return Invalid(
        "policy.gate_margin must be at most 0.5 (0 = 0.02, negative = none)");
  }
  if (p.gate_neighbours() == 1 || p.gate_neighbours() > 1000) {
    return Invalid(
        "policy.gate_neighbours must be in [2, 1000] (0 = 10, negative = the "
        "subjects null)");
  }
  if (!(p.adaptive_budget_fraction() <= 10) ||
      std::isnan(p.adaptive_budget_fraction())) {
    return Invalid(
        "policy.adaptive_budget_fraction must be at most 10 (0 = 0.25, "
        "negative = off)");
  }
  if (!(p.max_test_accuracy_drop() >= 0 && p.max_test_accuracy_drop() <= 100)) {
    return Invalid("policy.max_test_accuracy_drop must be in [0, 100] points");
  }
  if (!(p.max_cost_fraction() >= 0 && p.max_cost_fraction() <= 100)) {
    return Invalid("policy.max_cost_fraction must be in [0, 100]");
  }
  if (!(p.max_forget_accuracy_excess() >= 0 &&
        p.max_forget_accuracy_excess() <= 100)) {
    return Invalid(
        "policy.max_forget_accuracy_excess must be in [0, 100] points");
  }
  return absl::OkStatus();
}

absl::Status ValidatePolicy(const v1::UnlearningPolicy& p) {
  for (int m : p.methods()) {
    if (m == v1::UNLEARNING_METHOD_UNSPECIFIED ||
        !v1::UnlearningMethod_IsValid(m)) {
      return Invalid("policy.methods holds an unspecified or unknown method");
    }
    if (m == v1::UNLEARNING_METHOD_SISA && !p.has_sisa()) {
      return Invalid("policy.methods names SISA but policy.sisa is not set");
    }
    if (m == v1::UNLEARNING_METHOD_NEWTON && !p.has_newton()) {
      return Invalid(
          "policy.methods names NEWTON but policy.newton is not set");
    }
  }
  if (absl::Status st = ValidateGate(p); !st.ok()) return st;
  if (p.time_budget_seconds() < 0 || p.max_attempts() < 0 ||
      p.max_attempts() > 100 || p.batch_size() < 0 || p.batch_size() > 10000 ||
      p.batch_window_seconds() < 0 || p.batch_window_seconds() > 86400 ||
      p.old_version_grace_seconds() < 0) {
    return Invalid(
        "policy: time_budget_seconds >= 0, max_attempts 0..100, batch_size "
        "0..10000, batch_window_seconds 0..86400, old_version_grace_seconds "
        ">= 0");
  }
  if (p.has_sisa() && (p.sisa().shards() < 2 || p.sisa().shards() > 64 ||
                       p.sisa().slices() < 1 || p.sisa().slices() > 64)) {
    return Invalid("policy.sisa: shards 2..64, slices 1..64");
  }
  if (p.has_finetune()) {
    const v1::FinetuneConfig& f = p.finetune();
    if (f.epochs() < 0 || f.epochs() > 1000 ||
        !(f.learning_rate() >= 0 && f.learning_rate() <= 10) ||
        !(f.warmup_fraction() >= 0 && f.warmup_fraction() < 1) ||
        !(f.max_grad_norm() >= 0 && std::isfinite(f.max_grad_norm()))) {
      return Invalid(
          "policy.finetune: epochs 0..1000, learning_rate in [0, 10], "
          "warmup_fraction in [0, 1), max_grad_norm >= 0 and finite");
    }
  }
  if (absl::Status st = ValidateMethodConfigs(p); !st.ok()) return st;
  if (p.has_head_refit()) {
    const v1::HeadRefitConfig& h = p.head_refit();
    if (h.epochs() < 0 || h.epochs() > 1000 ||
        !(h.learning_rate() >= 0 && h.learning_rate() <= 10) ||
        h.batch_size() < 0 || h.batch_size() > 65536) {
      return Invalid(
          "policy.head_refit: epochs 0..1000, learning_rate in [0, 10], "
          "batch_size 0..65536");
    }
  }
  if (!v1::DeviceRequirement_IsValid(p.device())) {
    // A value no worker recognises would leave the model's work unclaimed.
    return Invalid("policy.device is not a known DeviceRequirement");
  }
  if (p.has_newton() &&
      !(p.newton().epsilon() > 0 && p.newton().delta() > 0 &&
        p.newton().delta() < 1 && p.newton().l2() > 0 &&
        p.newton().sigma() >= 0 && std::isfinite(p.newton().epsilon()) &&
        std::isfinite(p.newton().l2()) && std::isfinite(p.newton().sigma()))) {
    return Invalid(
        "policy.newton: epsilon > 0, delta in (0, 1), l2 > 0, sigma >= 0, "
        "all finite");
  }
  return absl::OkStatus();
}

// Collects metadata, spools the artifact's chunks to disk as they arrive
// (hashing them on the way), then registers in one transaction that reads
// the spool back in chunks: the call holds one message of the artifact in
// memory, whatever its size.
class RegisterReactor final
    : public grpc::ServerReadReactor<v1::RegisterModelRequest> {
 public:
  RegisterReactor(const Deps* deps, grpc::CallbackServerContext* ctx,
                  v1::Model* resp)
      : deps_(deps), ctx_(ctx), resp_(resp) {
    deps_->executor->Submit([this, md = AuthMetadata::From(*ctx)] {
      auto principal = deps_->auth->Authorize(md, {Role::kOperator});
      if (!principal.ok()) return Finish(ToGrpc(principal.status()));
      actor_ = principal->key_id;
      StartRead(&msg_);
    });
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      deps_->executor->Submit([this] { Done(ToGrpc(Store(), deps_->logger)); });
      return;
    }
    if (absl::Status st = Accept(); !st.ok()) return Done(ToGrpc(st));
    StartRead(&msg_);
  }

  void OnDone() override { delete this; }

 private:
  // Finishes the call with its spool closed and given back first, so that
  // a client's next registration finds the room.
  void Done(const grpc::Status& status) {
    spool_.reset();
    hold_.Release();
    Finish(status);
  }

  absl::Status Accept() {
    if (!have_metadata_) {
      if (!msg_.has_metadata()) {
        return Invalid("the first RegisterModelRequest must carry metadata");
      }
      metadata_ = msg_.metadata();
      have_metadata_ = true;
      return ValidateModelMetadata(metadata_);
    }
    if (msg_.has_metadata()) {
      return Invalid("only the first RegisterModelRequest may carry metadata");
    }
    const std::string& chunk = msg_.artifact_chunk();
    if (static_cast<int64_t>(chunk.size()) > deps_->limits.max_chunk_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("an artifact chunk holds at most ",
                       deps_->limits.max_chunk_bytes, " bytes"));
    }
    if (chunk.empty()) return absl::OkStatus();
    const int64_t spooled = spool_ == nullptr ? 0 : spool_->size();
    if (spooled + static_cast<int64_t>(chunk.size()) >
        deps_->limits.max_artifact_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("a model artifact holds at most ",
                       deps_->limits.max_artifact_bytes, " bytes"));
    }
    if (absl::Status st = hold_.Take(static_cast<int64_t>(chunk.size()));
        !st.ok()) {
      return st;
    }
    if (spool_ == nullptr) {
      auto spool = storage::SpoolFile::Create(deps_->spool_dir);
      if (!spool.ok()) return spool.status();
      spool_ = std::move(spool).value();
    }
    return spool_->Append(chunk);
  }

  absl::Status CheckShape() const {
    if (!have_metadata_) return Invalid("empty stream: no metadata was sent");
    const auto kind = metadata_.architecture().kind();
    const bool has_artifact = spool_ != nullptr;
    if (kind == v1::Architecture::KIND_TORCHSCRIPT && !has_artifact) {
      return Invalid("a KIND_TORCHSCRIPT model needs its artifact bytes");
    }
    if (metadata_.policy().has_sisa() && has_artifact) {
      return Invalid(
          "a SISA model is trained by lethe (shards and checkpoints): "
          "register it without an artifact");
    }
    if (metadata_.policy().has_sisa() &&
        kind == v1::Architecture::KIND_TORCHSCRIPT) {
      return Invalid("SISA needs a built-in architecture (logreg, mlp, cnn)");
    }
    return absl::OkStatus();
  }

  absl::Status Store() {
    if (ctx_->IsCancelled()) {
      return absl::CancelledError("registration cancelled by the client");
    }
    if (absl::Status st = CheckShape(); !st.ok()) return st;
    storage::RegisterParams p;
    if (spool_ != nullptr) {
      p.artifact_sha256 = spool_->Digest();
      if (!metadata_.artifact_sha256().empty() &&
          storage::ToHex(p.artifact_sha256) != metadata_.artifact_sha256()) {
        return Invalid(absl::StrCat("artifact_sha256 mismatch: metadata says ",
                                    metadata_.artifact_sha256(),
                                    ", received bytes hash to ",
                                    storage::ToHex(p.artifact_sha256)));
      }
      p.artifact = spool_.get();
    }
    p.model.name = metadata_.name();
    p.model.description = metadata_.description();
    p.model.dataset_id = metadata_.dataset_id();
    google::protobuf::util::MessageToJsonString(metadata_.architecture(),
                                                &p.model.architecture_json);
    google::protobuf::util::MessageToJsonString(metadata_.recipe(),
                                                &p.model.recipe_json);
    google::protobuf::util::MessageToJsonString(metadata_.policy(),
                                                &p.model.policy_json);
    auto row = deps_->models->Register(p, actor_);
    if (!row.ok()) return row.status();
    return ToProto(*row, resp_);
  }

  const Deps* deps_;
  // Alive until OnDone, which comes after our Finish: Store() reads it
  // before finishing. Never read it after a Finish.
  grpc::CallbackServerContext* ctx_;
  v1::Model* resp_;
  std::string actor_;
  v1::RegisterModelRequest msg_;
  v1::ModelMetadata metadata_;
  bool have_metadata_ = false;
  BudgetHold hold_{deps_->spooled};  // after deps_: initialised from it
  std::unique_ptr<storage::SpoolFile>
      spool_;  // null until the first artifact byte
};

// Streams a version's metadata, then its artifact one stored chunk at a
// time: each is read on the executor when the client has taken the one
// before, so a download holds one chunk, and a slow client holds no
// database connection.
class DownloadReactor final
    : public grpc::ServerWriteReactor<v1::DownloadModelVersionResponse> {
 public:
  DownloadReactor(const Deps* deps, grpc::CallbackServerContext* ctx,
                  v1::DownloadModelVersionRequest req)
      : deps_(deps), req_(std::move(req)) {
    deps_->executor->Submit([this, md = AuthMetadata::From(*ctx)] {
      absl::Status st = Load(md);
      if (!st.ok()) return Finish(ToGrpc(st, deps_->logger));
      StartWrite(&msg_);
    });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      return Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                                 "download cancelled by the client"));
    }
    deps_->executor->Submit([this] { WriteNext(); });
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Load(const AuthMetadata& md) {
    auto principal =
        deps_->auth->Authorize(md, {Role::kOperator, Role::kAuditor});
    if (!principal.ok()) return principal.status();
    if (auto st = CheckUuid("model_id", req_.model_id()); !st.ok()) return st;
    if (req_.version() < 0) return Invalid("version must be >= 0");
    auto version = deps_->models->GetVersion(req_.model_id(), req_.version());
    if (!version.ok()) return version.status();
    auto reader = deps_->models->OpenArtifact(version->artifact_sha256);
    if (!reader.ok()) return reader.status();
    reader_ = std::move(reader).value();
    ToProto(*version, msg_.mutable_version());
    return absl::OkStatus();
  }

  // On the executor: the next chunk, or the end. A chunk that fails its
  // digest ends the stream with DATA_LOSS after the chunks before it.
  void WriteNext() {
    msg_.Clear();
    auto more = reader_->Next(msg_.mutable_chunk());
    if (!more.ok()) return Finish(ToGrpc(more.status(), deps_->logger));
    if (!*more) return Finish(grpc::Status::OK);
    StartWrite(&msg_);
  }

  const Deps* deps_;
  const v1::DownloadModelVersionRequest req_;
  v1::DownloadModelVersionResponse msg_;
  std::unique_ptr<storage::ArtifactReader> reader_;
};

}  // namespace

absl::Status ValidateModelMetadata(const v1::ModelMetadata& m) {
  if (auto st = CheckName("metadata.name", m.name()); !st.ok()) return st;
  if (auto st = CheckText("metadata.description", m.description(),
                          kMaxDescriptionBytes, false);
      !st.ok()) {
    return st;
  }
  if (auto st = CheckUuid("metadata.dataset_id", m.dataset_id()); !st.ok()) {
    return st;
  }
  const auto& arch = m.architecture();
  if (arch.kind() == v1::Architecture::KIND_UNSPECIFIED ||
      !v1::Architecture::Kind_IsValid(arch.kind())) {
    return Invalid("metadata.architecture.kind is required");
  }
  if (arch.kind() == v1::Architecture::KIND_RF_LOGISTIC_REGRESSION &&
      (arch.hidden_units_size() != 1 || arch.hidden_units(0) < 1 ||
       arch.hidden_units(0) > 4096)) {
    return Invalid(
        "metadata.architecture.hidden_units: one entry, the number of random "
        "features (1..4096), for RF_LOGISTIC_REGRESSION");
  }
  if (arch.kind() == v1::Architecture::KIND_MLP) {
    if (arch.hidden_units_size() < 1 || arch.hidden_units_size() > 8) {
      return Invalid("metadata.architecture.hidden_units: 1..8 layers for MLP");
    }
    for (int units : arch.hidden_units()) {
      if (units < 1 || units > 16384) {
        return Invalid("metadata.architecture.hidden_units: 1..16384 each");
      }
    }
  }
  if (!m.has_recipe()) return Invalid("metadata.recipe is required");
  if (auto st = ValidateRecipe(m.recipe()); !st.ok()) return st;
  if (auto st = ValidatePolicy(m.policy()); !st.ok()) return st;
  if (!m.artifact_sha256().empty() &&
      (m.artifact_sha256().size() != 64 ||
       !storage::FromHex(m.artifact_sha256()))) {
    return Invalid("metadata.artifact_sha256 must be 64 hex characters");
  }
  return absl::OkStatus();
}

grpc::ServerReadReactor<v1::RegisterModelRequest>*
ModelRegistryImpl::RegisterModel(grpc::CallbackServerContext* ctx,
                                 v1::Model* resp) {
  return new RegisterReactor(deps_, ctx, resp);
}

grpc::ServerUnaryReactor* ModelRegistryImpl::GetModel(
    grpc::CallbackServerContext* ctx, const v1::GetModelRequest* req,
    v1::Model* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal =
        deps_->auth->Authorize(md, {Role::kOperator, Role::kAuditor});
    if (!principal.ok()) return principal.status();
    if (auto st = CheckUuid("id", req->id()); !st.ok()) return st;
    auto row = deps_->models->Get(req->id());
    if (!row.ok()) return row.status();
    return ToProto(*row, resp);
  });
}

grpc::ServerUnaryReactor* ModelRegistryImpl::ListModels(
    grpc::CallbackServerContext* ctx, const v1::ListModelsRequest* req,
    v1::ListModelsResponse* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal =
        deps_->auth->Authorize(md, {Role::kOperator, Role::kAuditor});
    if (!principal.ok()) return principal.status();
    if (!req->dataset_id().empty()) {
      if (auto st = CheckUuid("dataset_id", req->dataset_id()); !st.ok()) {
        return st;
      }
    }
    auto size = PageSize(req->page_size());
    if (!size.ok()) return size.status();
    const std::string fp = absl::StrCat("models|", req->dataset_id());
    auto cursor = DecodePageToken(req->page_token(), fp);
    if (!cursor.ok()) return cursor.status();
    auto page =
        deps_->models->List(req->dataset_id(), storage::Page{*size, *cursor});
    if (!page.ok()) return page.status();
    for (const auto& row : page->rows) {
      if (auto st = ToProto(row, resp->add_models()); !st.ok()) return st;
    }
    if (page->next) resp->set_next_page_token(EncodePageToken(*page->next, fp));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ModelRegistryImpl::ListModelVersions(
    grpc::CallbackServerContext* ctx, const v1::ListModelVersionsRequest* req,
    v1::ListModelVersionsResponse* resp) {
  return Offload(ctx, deps_, [this, req, resp](const auto& md) {
    auto principal =
        deps_->auth->Authorize(md, {Role::kOperator, Role::kAuditor});
    if (!principal.ok()) return principal.status();
    if (auto st = CheckUuid("model_id", req->model_id()); !st.ok()) return st;
    auto size = PageSize(req->page_size());
    if (!size.ok()) return size.status();
    int64_t before = 0;
    if (!req->page_token().empty() &&
        (!absl::SimpleAtoi(req->page_token(), &before) || before <= 0)) {
      return Invalid("page_token is not valid: pass back next_page_token");
    }
    auto page = deps_->models->ListVersions(req->model_id(), before, *size);
    if (!page.ok()) return page.status();
    for (const auto& row : page->rows) ToProto(row, resp->add_versions());
    if (page->next_before_version != 0) {
      resp->set_next_page_token(absl::StrCat(page->next_before_version));
    }
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::DownloadModelVersionResponse>*
ModelRegistryImpl::DownloadModelVersion(
    grpc::CallbackServerContext* ctx,
    const v1::DownloadModelVersionRequest* req) {
  return new DownloadReactor(deps_, ctx, *req);
}

}  // namespace lethe::server

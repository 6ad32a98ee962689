// model register, get, list, versions, download: ModelRegistry.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/crypto.h"
#include "base/file.h"
#include "base/hex.h"
#include "google/protobuf/util/json_util.h"
#include "lethe/v1/model.grpc.pb.h"
#include "lethectl/commands.h"

namespace lethe::cli {
namespace {

using ::lethe::v1::Model;
using ::lethe::v1::ModelRegistry;
using ::lethe::v1::ModelVersion;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr double kHuge = std::numeric_limits<double>::max();

std::unique_ptr<ModelRegistry::Stub> Stub(const Invocation& inv) {
  return ModelRegistry::NewStub(inv.connection.channel());
}

// --recipe-json / --policy-json: a proto3 JSON file; unknown fields are
// errors, so that a typo is not silently ignored.
absl::Status ReadJsonFlag(const ParsedFlags& flags, absl::string_view name,
                          google::protobuf::Message* out) {
  if (!flags.Has(name)) return absl::OkStatus();
  const std::string path = flags.Get(name);
  absl::StatusOr<std::string> json = base::ReadFile(path);
  if (!json.ok()) return json.status();
  auto status = google::protobuf::util::JsonStringToMessage(*json, out);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, " ", path, " is not a valid ", out->GetTypeName(),
        " in JSON: ", status.message().as_string()));
  }
  return absl::OkStatus();
}

// Inline recipe flags override the fields of --recipe-json.
void ReadRecipeFlags(FlagReader& reader, v1::TrainingRecipe* recipe) {
  if (auto v = ReadEnum<v1::Optimizer>(reader, "optimizer"))
    recipe->set_optimizer(*v);
  if (auto v = reader.Double("lr", 0, kHuge)) recipe->set_learning_rate(*v);
  if (auto v = reader.Double("momentum", 0, kHuge)) recipe->set_momentum(*v);
  if (auto v = reader.Double("weight-decay", 0, kHuge)) {
    recipe->set_weight_decay(*v);
  }
  if (auto v = reader.Int("epochs", 1, kInt32Max)) {
    recipe->set_epochs(static_cast<int32_t>(*v));
  }
  if (auto v = reader.Int("batch-size", 1, kInt32Max)) {
    recipe->set_batch_size(static_cast<int32_t>(*v));
  }
  if (auto v = reader.Int("seed", 0, kInt64Max)) {
    recipe->set_seed(static_cast<uint64_t>(*v));
  }
  if (auto v = ReadEnum<v1::LearningRateSchedule>(reader, "schedule")) {
    recipe->set_schedule(*v);
  }
}

// --methods replaces the methods of --policy-json.
void ReadMethods(FlagReader& reader, const ParsedFlags& flags,
                 v1::UnlearningPolicy* policy) {
  if (!flags.Has("methods")) return;
  policy->clear_methods();
  const auto& type =
      *google::protobuf::GetEnumDescriptor<v1::UnlearningMethod>();
  for (const std::string& name : flags.GetList("methods")) {
    std::optional<int> method = ParseEnumName(type, name);
    if (!method) {
      reader.Fail(absl::StrCat("--methods: unknown method '", name,
                               "'; known: ", EnumChoices(type)));
      return;
    }
    policy->add_methods(static_cast<v1::UnlearningMethod>(*method));
  }
}

// --sha256 as given (checked), else the artifact's own digest.
absl::StatusOr<std::string> ArtifactSha256(const ParsedFlags& flags) {
  std::string hex = absl::AsciiStrToLower(flags.Get("sha256"));
  if (flags.Has("sha256")) {
    if (hex.size() != 64 ||
        hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return absl::InvalidArgumentError("--sha256 must be 64 hex digits");
    }
    return hex;
  }
  if (!flags.Has("artifact")) return std::string();
  base::Sha256Stream sha;
  absl::Status read = base::ForEachChunk(
      flags.Get("artifact"), kUploadChunkBytes, [&](absl::string_view c) {
        sha.Update(c);
        return true;
      });
  if (!read.ok()) return read;
  return base::HexEncode(sha.Finish());
}

absl::Status BuildMetadata(const ParsedFlags& flags, v1::ModelMetadata* m) {
  FlagReader reader(flags);
  m->set_name(reader.Required("name"));
  m->set_description(flags.Get("description"));
  m->set_dataset_id(reader.Required("dataset"));
  if (!flags.Has("kind")) reader.Fail("--kind is required");
  if (auto kind = ReadEnum<v1::Architecture::Kind>(reader, "kind")) {
    m->mutable_architecture()->set_kind(*kind);
  }
  if (auto hidden = reader.IntList("hidden", 1, kInt32Max)) {
    for (int64_t units : *hidden) {
      m->mutable_architecture()->add_hidden_units(static_cast<int32_t>(units));
    }
  }
  if (!reader.ok()) return reader.status();
  // Recipe and policy stay unset unless some flag gives them.
  v1::TrainingRecipe recipe;
  v1::UnlearningPolicy policy;
  if (auto s = ReadJsonFlag(flags, "recipe-json", &recipe); !s.ok()) return s;
  if (auto s = ReadJsonFlag(flags, "policy-json", &policy); !s.ok()) return s;
  ReadRecipeFlags(reader, &recipe);
  ReadMethods(reader, flags, &policy);
  if (auto device = ReadEnum<v1::DeviceRequirement>(reader, "device")) {
    policy.set_device(*device);
  }
  if (!reader.ok()) return reader.status();
  if (flags.Has("recipe-json") || recipe.ByteSizeLong() > 0) {
    *m->mutable_recipe() = std::move(recipe);
  }
  if (flags.Has("policy-json") || policy.ByteSizeLong() > 0) {
    *m->mutable_policy() = std::move(policy);
  }
  absl::StatusOr<std::string> sha = ArtifactSha256(flags);
  if (!sha.ok()) return sha.status();
  m->set_artifact_sha256(*sha);
  return absl::OkStatus();
}

std::string RecipeText(const v1::TrainingRecipe& r) {
  if (r.ByteSizeLong() == 0) return "-";
  return absl::StrCat(ShortName(r.optimizer()), " lr ", r.learning_rate(),
                      " momentum ", r.momentum(), " weight-decay ",
                      r.weight_decay(), " epochs ", r.epochs(), " batch ",
                      r.batch_size(), " seed ", r.seed(), " schedule ",
                      ShortName(r.schedule()));
}

std::string PolicyText(const v1::UnlearningPolicy& p) {
  std::vector<std::string> methods;
  for (int m : p.methods()) {
    methods.push_back(ShortName(static_cast<v1::UnlearningMethod>(m)));
  }
  std::string out =
      methods.empty() ? "default methods" : absl::StrJoin(methods, ",");
  if (p.max_mia_auc() != 0)
    absl::StrAppend(&out, "; max MIA AUC ", p.max_mia_auc());
  if (p.max_test_accuracy_drop() != 0) {
    absl::StrAppend(&out, "; max accuracy drop ", p.max_test_accuracy_drop());
  }
  if (p.max_forget_accuracy_excess() != 0) {
    absl::StrAppend(&out, "; max forget-accuracy excess ",
                    p.max_forget_accuracy_excess());
  }
  if (p.max_cost_fraction() != 0) {
    absl::StrAppend(&out, "; max cost fraction ", p.max_cost_fraction());
  }
  if (p.gate_significance() != 0) {
    absl::StrAppend(&out, "; gate significance ", p.gate_significance());
  }
  if (p.gate_neighbours() > 0) {
    absl::StrAppend(&out, "; gate null ", p.gate_neighbours(),
                    " matched neighbours");
  } else if (p.gate_neighbours() < 0) {
    absl::StrAppend(&out, "; gate null whole subjects");
  }
  if (p.adaptive_budget_fraction() < 0) {
    absl::StrAppend(&out, "; adaptive rounds off");
  } else if (p.adaptive_budget_fraction() > 0) {
    absl::StrAppend(&out, "; adaptive budget ", p.adaptive_budget_fraction(),
                    " of a retrain");
  }
  if (p.has_finetune()) {
    const v1::FinetuneConfig& f = p.finetune();
    absl::StrAppend(&out, "; finetune epochs ", f.epochs(), " lr ",
                    f.learning_rate(), " warmup ", f.warmup_fraction(),
                    " clip ", f.max_grad_norm(), " (0 = default)");
  }
  if (p.head_refit().epochs() > 0) {
    absl::StrAppend(&out, "; head re-fit ", p.head_refit().epochs(),
                    " epochs lr ", p.head_refit().learning_rate(), " batch ",
                    p.head_refit().batch_size());
  }
  if (p.device() != v1::DEVICE_REQUIREMENT_ANY) {
    absl::StrAppend(&out, "; device ",
                    p.device() == v1::DEVICE_REQUIREMENT_CPU ? "cpu" : "cuda");
  }
  if (p.has_sisa()) {
    absl::StrAppend(&out, "; sisa ", p.sisa().shards(), " shards x ",
                    p.sisa().slices(), " slices");
  }
  if (p.has_newton()) {
    absl::StrAppend(&out, "; newton epsilon ", p.newton().epsilon(), " delta ",
                    p.newton().delta(), " l2 ", p.newton().l2());
    if (p.newton().sigma() != 0) {
      absl::StrAppend(&out, " sigma ", p.newton().sigma());
    }
  }
  return out;
}

std::string KindText(const v1::Architecture& a) {
  std::string out = ShortName(a.kind());
  if (a.hidden_units_size() > 0) {
    absl::StrAppend(&out, " (hidden ", absl::StrJoin(a.hidden_units(), ","),
                    ")");
  }
  return out;
}

std::string ModelText(const Model& m) {
  return absl::StrCat(
      Field("id", m.id()), Field("name", m.name()),
      m.description().empty() ? "" : Field("description", m.description()),
      Field("dataset", m.dataset_id()),
      Field("architecture", KindText(m.architecture())),
      Field("state", ShortName(m.state())),
      m.state_reason().empty() ? "" : Field("reason", m.state_reason()),
      Field("version", m.latest_version() == 0
                           ? "none yet"
                           : absl::StrCat(m.latest_version())),
      Field("recipe", RecipeText(m.recipe())),
      Field("policy", PolicyText(m.policy())),
      Field("created", FormatTime(m.create_time())),
      Field("updated", FormatTime(m.update_time())));
}

Outcome Register(const Invocation& inv) {
  v1::RegisterModelRequest first;
  if (auto s = BuildMetadata(inv.flags, first.mutable_metadata()); !s.ok()) {
    return Outcome::FromStatus(s);
  }
  Model response;
  auto context = inv.connection.NewContext(/*streaming=*/true);
  auto writer = Stub(inv)->RegisterModel(context.get(), &response);
  bool open = writer->Write(first);
  if (open && inv.flags.Has("artifact")) {
    v1::RegisterModelRequest message;
    absl::Status read =
        base::ForEachChunk(inv.flags.Get("artifact"), kUploadChunkBytes,
                           [&](absl::string_view chunk) {
                             message.set_artifact_chunk(std::string(chunk));
                             return open = writer->Write(message);
                           });
    if (!read.ok()) {
      context->TryCancel();  // the server then registers nothing
      (void)writer->Finish();
      return Outcome::FromStatus(read);
    }
  }
  if (open) writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return Outcome::Rpc(status);
  inv.printer.Print(response, ModelText(response));
  return Outcome::Ok();
}

Outcome Get(const Invocation& inv) {
  v1::GetModelRequest request;
  request.set_id(inv.flags.positionals()[0]);
  Model response;
  auto context = inv.connection.NewContext(/*streaming=*/false);
  grpc::Status status = Stub(inv)->GetModel(context.get(), request, &response);
  if (!status.ok()) return Outcome::Rpc(status);
  inv.printer.Print(response, ModelText(response));
  return Outcome::Ok();
}

Outcome List(const Invocation& inv) {
  v1::ListModelsRequest request;
  request.set_dataset_id(inv.flags.Get("dataset"));
  auto stub = Stub(inv);
  return RunList<v1::ListModelsRequest, v1::ListModelsResponse>(
      inv, std::move(request),
      [&](grpc::ClientContext* c, const auto& req, auto* resp) {
        return stub->ListModels(c, req, resp);
      },
      [](const v1::ListModelsResponse& response) {
        std::string rows;
        for (const Model& m : response.models()) {
          absl::StrAppendFormat(
              &rows, "%-36s  %-24s  %-11s  %-18s  v%d  dataset %s\n", m.id(),
              m.name(), ShortName(m.architecture().kind()),
              ShortName(m.state()), m.latest_version(), m.dataset_id());
        }
        return rows;
      });
}

std::string VersionRow(const ModelVersion& v) {
  std::string row = absl::StrFormat(
      "v%-4d  sha256 %s  %12d bytes  %-14s  %s  %d erasure(s)", v.version(),
      v.artifact_sha256(), v.size_bytes(), v.produced_by(),
      FormatTime(v.create_time()), v.erasure_ids_size());
  if (v.has_delete_time()) {
    absl::StrAppend(&row, "  deleted ", FormatTime(v.delete_time()));
  }
  return row + "\n";
}

Outcome Versions(const Invocation& inv) {
  v1::ListModelVersionsRequest request;
  request.set_model_id(inv.flags.positionals()[0]);
  auto stub = Stub(inv);
  return RunList<v1::ListModelVersionsRequest, v1::ListModelVersionsResponse>(
      inv, std::move(request),
      [&](grpc::ClientContext* c, const auto& req, auto* resp) {
        return stub->ListModelVersions(c, req, resp);
      },
      [](const v1::ListModelVersionsResponse& response) {
        std::string rows;
        for (const ModelVersion& v : response.versions()) rows += VersionRow(v);
        return rows;
      });
}

// Receives the artifact into `part`, hashing it; the first message must be
// the version's metadata.
Outcome Receive(const Invocation& inv,
                const v1::DownloadModelVersionRequest& request,
                const std::string& part, ModelVersion* version,
                base::Sha256Stream* sha, int64_t* size) {
  std::ofstream out(part, std::ios::binary | std::ios::trunc);
  if (!out) return Outcome::Local(absl::StrCat("cannot write ", part));
  auto context = inv.connection.NewContext(/*streaming=*/true);
  auto reader = Stub(inv)->DownloadModelVersion(context.get(), request);
  v1::DownloadModelVersionResponse message;
  bool first = true;
  while (reader->Read(&message)) {
    if (first != message.has_version()) {
      context->TryCancel();
      (void)reader->Finish();
      return Outcome::Local("server sent the artifact out of order");
    }
    first = false;
    if (message.has_version()) {
      *version = message.version();
      continue;
    }
    sha->Update(message.chunk());
    *size += static_cast<int64_t>(message.chunk().size());
    out.write(message.chunk().data(),
              static_cast<std::streamsize>(message.chunk().size()));
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return Outcome::Rpc(status);
  if (first) return Outcome::Local("server sent no version metadata");
  out.close();
  if (!out) return Outcome::Local(absl::StrCat("error writing ", part));
  return Outcome::Ok();
}

Outcome Download(const Invocation& inv) {
  FlagReader reader(inv.flags);
  v1::DownloadModelVersionRequest request;
  request.set_model_id(inv.flags.positionals()[0]);
  if (auto v = reader.Int("version", 1, kInt64Max)) request.set_version(*v);
  const std::string out = reader.Required("out");
  if (!reader.ok()) return Outcome::FromStatus(reader.status());
  // Written beside the destination and renamed once verified, so that a
  // failed download never leaves a wrong file under the requested name.
  const std::string part = out + ".part";
  ModelVersion version;
  base::Sha256Stream sha;
  int64_t size = 0;
  Outcome received = Receive(inv, request, part, &version, &sha, &size);
  const std::string digest = base::HexEncode(sha.Finish());
  if (received.exit_code == kExitOk &&
      (digest != absl::AsciiStrToLower(version.artifact_sha256()) ||
       size != version.size_bytes())) {
    received = Outcome::Local(absl::StrCat(
        "verification failed: received ", size, " bytes with sha256 ", digest,
        ", expected ", version.size_bytes(), " bytes with sha256 ",
        version.artifact_sha256()));
  }
  if (received.exit_code == kExitOk &&
      std::rename(part.c_str(), out.c_str()) != 0) {
    received =
        Outcome::Local(absl::StrCat("cannot rename ", part, " to ", out));
  }
  if (received.exit_code != kExitOk) {
    std::remove(part.c_str());
    return received;
  }
  inv.printer.Print(
      version, absl::StrCat("model ", version.model_id(), " version ",
                            version.version(), ": ", size, " bytes, sha256 ",
                            digest, " verified, saved to ", out));
  return Outcome::Ok();
}

}  // namespace

std::vector<Command> ModelCommands() {
  std::vector<FlagSpec> list_flags = {
      {"dataset", "ID", "only models trained on this dataset"}};
  for (const FlagSpec& flag : PageFlags()) list_flags.push_back(flag);
  return {
      {"model register",
       "--name N --dataset ID --kind K [flags]",
       "register a model (and upload its artifact)",
       0,
       {{"name", "NAME", "unique name, [A-Za-z0-9._-]"},
        {"description", "TEXT", "free text"},
        {"dataset", "ID", "the dataset whose train split trained it"},
        {"kind", "KIND", "torchscript|logreg|mlp|cnn|rf-logreg"},
        {"hidden", "N,...",
         "hidden layer widths, for mlp (e.g. 256,128); for rf-logreg the "
         "number of random features (e.g. 256)"},
        {"artifact", "FILE",
         "the model file (TorchScript; required for torchscript)"},
        {"sha256", "HEX",
         "expected SHA-256 of the artifact (default: computed)"},
        {"recipe-json", "FILE", "TrainingRecipe as proto3 JSON"},
        {"optimizer", "OPT", "sgd|adam (overrides --recipe-json)"},
        {"lr", "RATE", "learning rate"},
        {"momentum", "M", "momentum, for sgd"},
        {"weight-decay", "W", "L2 penalty"},
        {"epochs", "N", "training epochs"},
        {"batch-size", "N", "training batch size"},
        {"seed", "N", "seed of initialisation and shuffling"},
        {"schedule", "S", "learning-rate schedule: constant|linear"},
        {"policy-json", "FILE", "UnlearningPolicy as proto3 JSON"},
        {"methods", "M,...",
         "unlearning methods in order, e.g. scrub,retrain (overrides "
         "--policy-json)"},
        {"device", "D",
         "which workers may run it: any|cpu|cuda (overrides --policy-json)"}},
       Register},
      {"model get", "ID", "show a model", 1, {}, Get},
      {"model list", "[--dataset ID] [flags]", "list models", 0,
       std::move(list_flags), List},
      {"model versions", "ID [flags]", "list a model's versions, newest first",
       1, PageFlags(), Versions},
      {"model download",
       "ID [--version N] --out FILE",
       "download a version's artifact and verify its SHA-256",
       1,
       {{"version", "N", "the version (default: the newest)"},
        {"out", "FILE", "where to save it"}},
       Download},
  };
}

}  // namespace lethe::cli

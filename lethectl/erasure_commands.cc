// submit, get, list, cancel, watch: ErasureService.
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/crypto.h"
#include "base/hex.h"
#include "google/protobuf/util/time_util.h"
#include "lethe/v1/erasure.grpc.pb.h"
#include "lethectl/commands.h"
#include "lethectl/uuid.h"

namespace lethe::cli {
namespace {

using ::lethe::v1::Erasure;
using ::lethe::v1::ErasureService;
using ::lethe::v1::ErasureState;

std::unique_ptr<ErasureService::Stub> Stub(const Invocation& inv) {
  return ErasureService::NewStub(inv.connection.channel());
}

std::string TaskLines(const Erasure& erasure) {
  std::string out;
  for (const auto& task : erasure.tasks()) {
    absl::StrAppend(&out, "  ", task.model_id(), "  ", ShortName(task.state()),
                    "  attempts ", task.attempts());
    if (task.result_version() != 0) {
      absl::StrAppend(&out, "  version ", task.result_version());
    }
    absl::StrAppend(&out, "  updated ", FormatTime(task.update_time()), "\n");
    if (!task.last_error().empty()) {
      absl::StrAppend(&out, "    last error: ", task.last_error(), "\n");
    }
  }
  return out;
}

std::string ErasureText(const Erasure& e) {
  std::string legal = ShortName(e.legal_ground());
  if (!e.legal_reference().empty()) {
    absl::StrAppend(&legal, " (", e.legal_reference(), ")");
  }
  std::string out = absl::StrCat(
      Field("id", e.id()), Field("state", ShortName(e.state())),
      e.state_reason().empty() ? "" : Field("reason", e.state_reason()),
      Field("legal ground", legal),
      Field("scope", e.scope_model_ids().empty()
                         ? "all models"
                         : absl::StrJoin(e.scope_model_ids(), ", ")),
      Field("commitment", base::HexEncode(e.subject_commitment())),
      Field("idempotency", e.idempotency_key()),
      Field("created", FormatTime(e.create_time())),
      Field("updated", FormatTime(e.update_time())));
  if (e.has_complete_time()) {
    absl::StrAppend(&out, Field("completed", FormatTime(e.complete_time())));
  }
  absl::StrAppend(&out, Field("tasks", absl::StrCat(e.tasks_size())),
                  TaskLines(e));
  return out;
}

std::string ErasureRow(const Erasure& e) {
  return absl::StrFormat("%-36s  %-16s  %-24s  %d task(s)\n", e.id(),
                         ShortName(e.state()), FormatTime(e.create_time()),
                         e.tasks_size());
}

// One line per event: when, the state, each task's state, and the reason.
std::string EventLine(const Erasure& e) {
  std::string out = absl::StrFormat("%-24s  %-16s", FormatTime(e.update_time()),
                                    ShortName(e.state()));
  for (const auto& task : e.tasks()) {
    absl::StrAppend(&out, "  ", task.model_id(), "=", ShortName(task.state()));
  }
  if (!e.state_reason().empty())
    absl::StrAppend(&out, "  (", e.state_reason(), ")");
  return out;
}

constexpr size_t kSaltBytes = 32;

// --subject-salt, or 32 bytes drawn here: lethectl holds the salt before
// the call, so a lost response loses nothing.
std::string SubjectSalt(const ParsedFlags& flags, FlagReader& reader) {
  if (!flags.Has("subject-salt")) return base::RandomBytes(kSaltBytes);
  auto salt = base::HexDecode(flags.Get("subject-salt"));
  if (!salt || salt->size() != kSaltBytes) {
    reader.Fail("--subject-salt must be 64 hex digits (32 bytes)");
    return "";
  }
  return *salt;
}

// What to pass to repeat the call without creating a second request, when
// lethectl chose the key or the salt itself. Printed before the call.
void PrintRetryHint(const Invocation& inv,
                    const v1::SubmitErasureRequest& request) {
  const bool drew_key = !inv.flags.Has("idempotency-key");
  const bool drew_salt = !inv.flags.Has("subject-salt");
  if (!drew_key && !drew_salt) return;
  std::cerr << "lethectl: " << (drew_key ? "no --idempotency-key given; " : "")
            << (drew_salt ? "subject salt drawn here; " : "")
            << "to retry without a duplicate, pass --idempotency-key "
            << request.idempotency_key() << " --subject-salt "
            << base::HexEncode(request.subject_salt()) << "\n";
}

Outcome Submit(const Invocation& inv) {
  FlagReader reader(inv.flags);
  v1::SubmitErasureRequest request;
  request.set_subject_id(reader.Required("subject"));
  if (!inv.flags.Has("legal-ground")) reader.Fail("--legal-ground is required");
  if (auto ground = ReadEnum<v1::LegalGround>(reader, "legal-ground")) {
    request.set_legal_ground(*ground);
  }
  request.set_legal_reference(inv.flags.Get("reference"));
  for (const std::string& id : inv.flags.GetList("model")) {
    request.add_model_ids(id);
  }
  request.set_subject_salt(SubjectSalt(inv.flags, reader));
  if (!reader.ok()) return Outcome::FromStatus(reader.status());
  request.set_idempotency_key(inv.flags.Get("idempotency-key"));
  if (request.idempotency_key().empty()) {
    request.set_idempotency_key(NewUuidV4());
  }
  PrintRetryHint(inv, request);
  v1::SubmitErasureResponse response;
  auto context = inv.connection.NewContext(/*streaming=*/false);
  grpc::Status status =
      Stub(inv)->SubmitErasure(context.get(), request, &response);
  if (!status.ok()) return Outcome::Rpc(status);
  const Erasure& e = response.erasure();
  inv.printer.Print(
      response,
      absl::StrCat(
          Field("request", e.id()), Field("state", ShortName(e.state())),
          e.state_reason().empty() ? "" : Field("reason", e.state_reason()),
          Field("salt", response.subject_salt().empty()
                            ? "-"
                            : base::HexEncode(response.subject_salt())),
          Field("idempotency", e.idempotency_key()),
          response.replayed() ? Field("replayed", "yes") : ""));
  if (response.subject_salt().empty()) {  // a replay from an older server
    std::cerr << "lethectl: replayed: this idempotency key and body already "
                 "created the request; its salt was returned only then\n";
  } else if (response.subject_salt() != request.subject_salt()) {
    std::cerr << "lethectl: the server drew its own salt (a lethe without "
                 "client salts): keep the salt printed above, not the one "
                 "drawn here\n";
  } else {
    std::cerr << "lethectl: keep the subject salt: lethe does not store it, "
                 "and it is needed to show which subject the commitment is "
                 "about\n";
  }
  return Outcome::Ok();
}

Outcome Get(const Invocation& inv) {
  v1::GetErasureRequest request;
  request.set_id(inv.flags.positionals()[0]);
  Erasure response;
  auto context = inv.connection.NewContext(/*streaming=*/false);
  grpc::Status status =
      Stub(inv)->GetErasure(context.get(), request, &response);
  if (!status.ok()) return Outcome::Rpc(status);
  inv.printer.Print(response, ErasureText(response));
  return Outcome::Ok();
}

Outcome Cancel(const Invocation& inv) {
  v1::CancelErasureRequest request;
  request.set_id(inv.flags.positionals()[0]);
  Erasure response;
  auto context = inv.connection.NewContext(/*streaming=*/false);
  grpc::Status status =
      Stub(inv)->CancelErasure(context.get(), request, &response);
  if (!status.ok()) return Outcome::Rpc(status);
  inv.printer.Print(response, ErasureText(response));
  return Outcome::Ok();
}

Outcome List(const Invocation& inv) {
  FlagReader reader(inv.flags);
  v1::ListErasuresRequest request;
  if (auto state = ReadEnum<ErasureState>(reader, "state")) {
    request.set_state(*state);
  }
  request.set_model_id(inv.flags.Get("model"));
  if (auto after = ReadTime(reader, "after")) {
    *request.mutable_created_after() = *after;
  }
  if (auto before = ReadTime(reader, "before")) {
    *request.mutable_created_before() = *before;
  }
  if (!reader.ok()) return Outcome::FromStatus(reader.status());
  auto stub = Stub(inv);
  return RunList<v1::ListErasuresRequest, v1::ListErasuresResponse>(
      inv, std::move(request),
      [&](grpc::ClientContext* c, const auto& req, auto* resp) {
        return stub->ListErasures(c, req, resp);
      },
      [](const v1::ListErasuresResponse& response) {
        std::string rows;
        for (const Erasure& e : response.erasures()) {
          rows += ErasureRow(e);
        }
        return rows;
      });
}

Outcome Watch(const Invocation& inv) {
  v1::WatchErasureRequest request;
  request.set_id(inv.flags.positionals()[0]);
  auto context = inv.connection.NewContext(/*streaming=*/true);
  auto reader = Stub(inv)->WatchErasure(context.get(), request);
  v1::ErasureEvent event;
  ErasureState last = v1::ERASURE_STATE_UNSPECIFIED;
  while (reader->Read(&event)) {
    last = event.erasure().state();
    inv.printer.Print(event, EventLine(event.erasure()));
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return Outcome::Rpc(status);
  switch (last) {
    case v1::ERASURE_STATE_COMPLETED:
    case v1::ERASURE_STATE_NOTHING_TO_ERASE:
      return Outcome::Ok();
    case v1::ERASURE_STATE_FAILED:
    case v1::ERASURE_STATE_CANCELLED:
      return {kExitWatchFailed, absl::StrCat("erasure ", request.id(),
                                             " ended ", ShortName(last))};
    default:
      return {kExitRpc,
              absl::StrCat("the stream ended while the erasure was ",
                           ShortName(last), ", before a terminal state")};
  }
}

}  // namespace

std::vector<Command> ErasureCommands() {
  std::vector<FlagSpec> list_flags = {
      {"state", "STATE",
       "only requests in this state: queued|running|completed|"
       "nothing-to-erase|failed|cancelled"},
      {"model", "ID", "only requests with a task on this model"},
      {"after", "RFC3339", "only requests created at or after this time"},
      {"before", "RFC3339", "only requests created before this time"},
  };
  for (const FlagSpec& flag : PageFlags()) list_flags.push_back(flag);
  return {
      {"submit",
       "--subject ID --legal-ground G [flags]",
       "ask lethe to erase a data subject from every model (or --model ...)",
       0,
       {{"subject", "ID", "the data subject's id, as in uploaded records"},
        {"legal-ground", "G",
         "gdpr-17-1a|gdpr-17-1b|gdpr-17-1c|gdpr-17-1d|gdpr-17-1e|gdpr-17-1f|"
         "ccpa|other"},
        {"reference", "TEXT",
         "free text such as a ticket number (required for other)"},
        {"model", "ID", "restrict the erasure to these models", true},
        {"idempotency-key", "KEY",
         "retry key; a random UUID is generated and printed when absent"},
        {"subject-salt", "HEX",
         "the commitment's salt, 64 hex digits (to retry a call: the same "
         "salt); 32 random bytes are drawn and printed when absent"}},
       Submit},
      {"get", "ID", "show an erasure request", 1, {}, Get},
      {"list", "[flags]", "list erasure requests, newest first", 0,
       std::move(list_flags), List},
      {"cancel",
       "ID",
       "cancel a request before any work started",
       1,
       {},
       Cancel},
      {"watch",
       "ID",
       "print each state change until the request ends",
       1,
       {},
       Watch},
  };
}

}  // namespace lethe::cli

// lethectl's commands. Each service's file (erasure_commands.cc,
// dataset_commands.cc, model_commands.cc, certificate_commands.cc,
// health_commands.cc) turns flags into requests, calls
// the server and prints the responses; main.cc finds the command, parses
// its flags and opens the connection.
#ifndef LETHE_LETHECTL_COMMANDS_H_
#define LETHE_LETHECTL_COMMANDS_H_

#include <cstddef>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "grpcpp/client_context.h"
#include "lethectl/connection.h"
#include "lethectl/flags.h"
#include "lethectl/outcome.h"
#include "lethectl/output.h"

namespace lethe::cli {

// Files sent to the server go in chunks of this size (the API allows 4 MiB).
inline constexpr size_t kUploadChunkBytes = 1 << 20;

struct Invocation {
  const ParsedFlags& flags;
  const Connection& connection;
  Printer& printer;
};

struct Command {
  absl::string_view name;       // "submit", "dataset upload"
  absl::string_view arguments;  // the synopsis after the name
  absl::string_view summary;
  int positionals = 0;          // exact number of positional arguments
  std::vector<FlagSpec> flags;  // besides CommonFlags()
  std::function<Outcome(const Invocation&)> run;
};

std::vector<Command> ErasureCommands();
std::vector<Command> DatasetCommands();
std::vector<Command> ModelCommands();
std::vector<Command> CertificateCommands();
std::vector<Command> HealthCommands();
// All of the above, in the order --help lists them.
std::vector<Command> AllCommands();

// `lethectl --help` and `lethectl CMD --help`.
std::string GeneralHelp(const std::vector<Command>& commands);
std::string CommandHelp(const Command& command);

// --page-size, --page-token and --all, for list commands (RunList).
std::vector<FlagSpec> PageFlags();

// Runs a list RPC, `rpc(context, request, response)`, for one page or, with
// --all, every page from --page-token on; prints each page as JSON or as
// `rows(response)`. Without --all, text output ends with a hint on stderr
// when there are more pages.
template <typename Request, typename Response, typename Rpc, typename Rows>
Outcome RunList(const Invocation& inv, Request request, Rpc rpc, Rows rows) {
  FlagReader reader(inv.flags);
  if (auto size = reader.Int("page-size", 1, 1000)) {
    request.set_page_size(static_cast<int32_t>(*size));
  }
  if (!reader.ok()) return Outcome::FromStatus(reader.status());
  request.set_page_token(inv.flags.Get("page-token"));
  const bool all = inv.flags.Switch("all");
  do {
    Response response;
    auto context = inv.connection.NewContext(/*streaming=*/false);
    grpc::Status status = rpc(context.get(), request, &response);
    if (!status.ok()) return Outcome::Rpc(status);
    inv.printer.Print(response, rows(response));
    request.set_page_token(response.next_page_token());
  } while (all && !request.page_token().empty());
  if (!inv.printer.json() && !request.page_token().empty()) {
    std::cerr << "lethectl: more results: add --page-token "
              << request.page_token() << " (or --all)\n";
  }
  return Outcome::Ok();
}

}  // namespace lethe::cli

#endif  // LETHE_LETHECTL_COMMANDS_H_

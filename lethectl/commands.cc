#include "lethectl/commands.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace lethe::cli {

std::vector<FlagSpec> PageFlags() {
  return {
      {"page-size", "N", "results per page, 1..1000 (server default 50)"},
      {"page-token", "TOKEN", "continue from a previous page"},
      {"all", "", "follow page tokens to the last page"},
  };
}

std::vector<Command> AllCommands() {
  std::vector<Command> all = ErasureCommands();
  for (auto* group : {&DatasetCommands, &ModelCommands, &CertificateCommands,
                      &HealthCommands}) {
    for (Command& command : (*group)()) all.push_back(std::move(command));
  }
  return all;
}

std::string GeneralHelp(const std::vector<Command>& commands) {
  size_t width = 0;
  for (const Command& c : commands) width = std::max(width, c.name.size());
  std::string out =
      "usage: lethectl COMMAND [ARGS] [flags]\n\n"
      "A client for lethe, the machine-unlearning service.\n\nCommands:\n";
  for (const Command& c : commands) {
    absl::StrAppend(&out, "  ", c.name,
                    std::string(width + 2 - c.name.size(), ' '), c.summary,
                    "\n");
  }
  absl::StrAppend(
      &out, "\nFlags of every command:\n", FormatFlagHelp(CommonFlags()),
      "\nExit codes: 0 success; 1 watch ended failed or cancelled, verify "
      "found a\ncheck that does not hold, or health is not SERVING; 2 usage "
      "error; 3 the\ncall failed (the message names the gRPC code); 4 a local "
      "file could not be\nread or written, or a download failed verification."
      "\n\nRun 'lethectl COMMAND --help' for a command's flags.\n");
  return out;
}

std::string CommandHelp(const Command& command) {
  std::string out =
      absl::StrCat("usage: lethectl ", command.name, " ", command.arguments,
                   "\n\n", command.summary, "\n");
  if (!command.flags.empty()) {
    absl::StrAppend(&out, "\nFlags:\n", FormatFlagHelp(command.flags));
  }
  absl::StrAppend(&out, "\nFlags of every command:\n",
                  FormatFlagHelp(CommonFlags()));
  return out;
}

}  // namespace lethe::cli

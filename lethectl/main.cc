// lethectl: the command-line client of lethe's gRPC API. See docs/cli.md.
#include <algorithm>
#include <cstddef>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lethectl/commands.h"

namespace lethe::cli {
namespace {

bool TakesValue(absl::string_view flag) {
  for (const FlagSpec& spec : CommonFlags()) {
    if (absl::StrCat("--", spec.name) == flag) return !spec.value.empty();
  }
  return false;
}

// The indexes of the command words ("dataset", "upload") in `args`:
// the first non-flag arguments, skipping the values of common flags that
// come before them.
std::vector<size_t> CommandWords(const std::vector<std::string>& args,
                                 const std::vector<Command>& commands) {
  std::vector<size_t> words;
  std::string name;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--") break;
    if (args[i].starts_with("-")) {
      if (TakesValue(args[i])) ++i;
      continue;
    }
    const std::string candidate =
        name.empty() ? args[i] : absl::StrCat(name, " ", args[i]);
    const bool exact =
        std::any_of(commands.begin(), commands.end(),
                    [&](const Command& c) { return c.name == candidate; });
    const bool group =
        std::any_of(commands.begin(), commands.end(), [&](const Command& c) {
          return absl::StartsWith(c.name, candidate + " ");
        });
    if (!exact && !group) break;
    words.push_back(i);
    name = candidate;
    if (exact) break;
  }
  return words;
}

// "create, upload, get, list" for group "dataset".
std::string Subcommands(const std::vector<Command>& commands,
                        const std::string& group) {
  std::string out;
  for (const Command& c : commands) {
    if (!absl::StartsWith(c.name, group + " ")) continue;
    absl::StrAppend(&out, out.empty() ? "" : ", ",
                    c.name.substr(group.size() + 1));
  }
  return out;
}

Outcome Usage(absl::string_view message, absl::string_view command) {
  return Outcome::Usage(absl::StrCat(message, "\nrun 'lethectl ", command,
                                     command.empty() ? "" : " ",
                                     "--help' for usage"));
}

// The error for a group without its subcommand or an unknown word.
Outcome NoSuchCommand(const std::vector<Command>& commands,
                      const std::string& group,
                      const std::vector<std::string>& args) {
  if (!group.empty()) {
    return Usage(absl::StrCat("'", group, "' needs a subcommand: ",
                              Subcommands(commands, group)),
                 "");
  }
  auto word = std::find_if(args.begin(), args.end(), [](const std::string& a) {
    return !a.starts_with("-");
  });
  if (word == args.end()) return Usage("no command given", "");
  return Usage(absl::StrCat("unknown command '", *word, "'"), "");
}

Outcome RunCommand(const Command& command,
                   const std::vector<std::string>& args) {
  std::vector<FlagSpec> specs(CommonFlags().begin(), CommonFlags().end());
  specs.insert(specs.end(), command.flags.begin(), command.flags.end());
  absl::StatusOr<ParsedFlags> flags = ParseFlags(specs, args);
  if (!flags.ok()) return Usage(flags.status().message(), command.name);
  if (static_cast<int>(flags->positionals().size()) != command.positionals) {
    return Usage(absl::StrCat("expected: lethectl ", command.name, " ",
                              command.arguments),
                 command.name);
  }
  absl::StatusOr<ConnectionOptions> options =
      ConnectionOptionsFromFlags(*flags);
  if (!options.ok()) return Usage(options.status().message(), command.name);
  absl::StatusOr<Connection> connection = Connection::Open(*std::move(options));
  if (!connection.ok()) return Outcome::FromStatus(connection.status());
  Printer printer(flags->Switch("json"), std::cout);
  Outcome outcome = command.run({*flags, *connection, printer});
  if (outcome.exit_code == kExitUsage)
    return Usage(outcome.message, command.name);
  return outcome;
}

int Main(std::vector<std::string> args) {
  const std::vector<Command> commands = AllCommands();
  const bool help = std::find(args.begin(), args.end(), "--help") != args.end();
  const std::vector<size_t> words = CommandWords(args, commands);
  std::string name;
  for (size_t i : words) {
    if (!name.empty()) name += " ";
    name += args[i];
  }
  for (size_t k = words.size(); k-- > 0;) {  // back to front
    args.erase(args.begin() + static_cast<std::ptrdiff_t>(words[k]));
  }
  auto command = std::find_if(commands.begin(), commands.end(),
                              [&](const Command& c) { return c.name == name; });
  Outcome outcome;
  if (command != commands.end()) {
    if (help) {
      std::cout << CommandHelp(*command);
      return kExitOk;
    }
    outcome = RunCommand(*command, args);
  } else if (help) {
    std::cout << GeneralHelp(commands);
    return kExitOk;
  } else if (args.empty() && name.empty()) {
    std::cerr << GeneralHelp(commands);
    return kExitUsage;
  } else {
    outcome = NoSuchCommand(commands, name, args);
  }
  if (!outcome.message.empty())
    std::cerr << "lethectl: " << outcome.message << "\n";
  return outcome.exit_code;
}

}  // namespace
}  // namespace lethe::cli

int main(int argc, char** argv) {
  return lethe::cli::Main(std::vector<std::string>(argv + 1, argv + argc));
}

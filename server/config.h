// One configuration surface for every lethe command: each option has a
// flag `--name`, an environment variable `LETHE_NAME` (upper case, dashes
// as underscores) and a line `name = value` in an optional file given by
// `--config`. Precedence: flag, then environment, then file, then default.
#ifndef LETHE_SERVER_CONFIG_H_
#define LETHE_SERVER_CONFIG_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lethe::server {

struct OptionSpec {
  std::string name;
  std::string default_value;
  std::string help;
};

class Config {
 public:
  // Parses `args` (without the program and subcommand names) against
  // `specs`. INVALID_ARGUMENT for an unknown flag, a missing value or an
  // unreadable config file. Positional arguments are kept in order.
  static absl::StatusOr<Config> Parse(const std::vector<OptionSpec>& specs,
                                      const std::vector<std::string>& args);

  const std::string& Get(const std::string& name) const;
  absl::StatusOr<int> GetInt(const std::string& name) const;
  bool GetBool(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }
  bool help_requested() const { return help_; }

  // "  --name (LETHE_NAME, default: x)\n      help" lines for --help.
  static std::string Usage(const std::vector<OptionSpec>& specs);
  static std::string EnvName(const std::string& option);

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

}  // namespace lethe::server

#endif  // LETHE_SERVER_CONFIG_H_

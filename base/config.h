// One configuration surface for `lethe` and `lethe-worker`: each option has
// a flag `--name` (parsed by base/flags.h), an environment variable
// `LETHE_NAME` (upper case, dashes as underscores) and a line
// `name = value` in an optional file given by `--config` or LETHE_CONFIG.
// Precedence: flag, then environment, then file, then default. A flag given
// twice takes its last value (a wrapper's defaults, then its caller's).
// An option whose default is "false" is a switch: `--name` alone turns it
// on. `--help` and `-h` ask for help.
#ifndef LETHE_BASE_CONFIG_H_
#define LETHE_BASE_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lethe::base {

struct OptionSpec {
  std::string name;
  std::string default_value;
  std::string help;
};

class Config {
 public:
  // Parses `args` (without the program and subcommand names) against
  // `specs`. INVALID_ARGUMENT for an unknown flag or config-file option, a
  // missing value or an unreadable config file. Positional arguments are
  // kept in order.
  static absl::StatusOr<Config> Parse(const std::vector<OptionSpec>& specs,
                                      const std::vector<std::string>& args);

  // The value of an option in `specs`; "" for any other name.
  const std::string& Get(const std::string& name) const;
  // INVALID_ARGUMENT, naming the flag, unless the value is such a number.
  absl::StatusOr<int> GetInt(const std::string& name) const;
  absl::StatusOr<int64_t> GetInt64(const std::string& name) const;
  absl::StatusOr<double> GetDouble(const std::string& name) const;
  // "true", "1" and "yes" are true; anything else false.
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

}  // namespace lethe::base

#endif  // LETHE_BASE_CONFIG_H_

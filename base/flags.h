// The one command-line flag parser of lethe's programs (`lethe`,
// `lethe-worker`, `lethectl`): GNU-style long flags `--name value` and
// `--name=value`, switches, repeatable flags and positional arguments, in
// any order. `--` ends the flags. A program declares its flags as FlagSpecs,
// which also produce its --help text; base/config.h layers `LETHE_*`
// environment variables and a config file over this parser.
//
// Rules, and the INVALID_ARGUMENT each broken one gives (naming the flag):
// - an unknown `--name`, or a single-dash word such as `-x`, is an error
//   (a lone `-` is a positional argument);
// - a flag with a value placeholder needs a value (`--name=` gives "");
// - a switch takes no value, except an explicit `--name=true` or
//   `--name=false`; given alone it reads "true";
// - a flag that is not `repeated` may be given once.
//
// FlagReader turns flag text into typed values; it records the first error
// so a command can read all of its flags and check once.
#ifndef LETHE_BASE_FLAGS_H_
#define LETHE_BASE_FLAGS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lethe::base {

struct FlagSpec {
  absl::string_view name;   // without the leading "--"
  absl::string_view value;  // placeholder such as "ID"; empty for a switch
  absl::string_view help;
  // May be given more than once: GetList returns every value, Get the last.
  bool repeated = false;
};

class ParsedFlags {
 public:
  // Whether the flag was given at all (a switch also with `=false`).
  bool Has(absl::string_view name) const;
  // Whether a switch is on: given, and not as `--name=false`.
  bool Switch(absl::string_view name) const;
  // The (last) value of a flag, or `fallback` when it was not given.
  std::string Get(absl::string_view name,
                  absl::string_view fallback = {}) const;
  // Every value of a repeatable flag, in order; comma-separated values are
  // split ("--model a,b --model c" gives a, b, c).
  std::vector<std::string> GetList(absl::string_view name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  friend absl::StatusOr<ParsedFlags> ParseFlags(
      std::span<const FlagSpec> specs, std::span<const std::string> args);

  std::map<std::string, std::vector<std::string>, std::less<>> values_;
  std::vector<std::string> positionals_;
};

absl::StatusOr<ParsedFlags> ParseFlags(std::span<const FlagSpec> specs,
                                       std::span<const std::string> args);

// One line per flag, aligned, for --help.
std::string FormatFlagHelp(std::span<const FlagSpec> specs);

// Splits "a,b,,c" into {"a", "b", "c"}.
std::vector<std::string> SplitList(absl::string_view text);

// Typed reads of parsed flags. Not thread-safe; refers to `flags`, which
// must outlive it.
class FlagReader {
 public:
  explicit FlagReader(const ParsedFlags& flags) : flags_(flags) {}

  // The value of a flag that must be given (and not be empty).
  std::string Required(absl::string_view name);
  // Typed values of optional flags: nullopt when absent or malformed (the
  // error is recorded).
  std::optional<int64_t> Int(absl::string_view name, int64_t min, int64_t max);
  std::optional<double> Double(absl::string_view name, double min, double max);
  // A comma-separated list of integers in [min, max], e.g. "1,28,28".
  std::optional<std::vector<int64_t>> IntList(absl::string_view name,
                                              int64_t min, int64_t max);

  // Records an error of the caller's own (first error wins).
  void Fail(absl::string_view message);
  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }
  const ParsedFlags& flags() const { return flags_; }

 private:
  const ParsedFlags& flags_;
  absl::Status status_;
};

}  // namespace lethe::base

#endif  // LETHE_BASE_FLAGS_H_

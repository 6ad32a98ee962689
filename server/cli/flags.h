// lethectl's flag parser: GNU-style `--name value` and `--name=value` long
// flags, boolean switches, repeatable flags and positional arguments, in any
// order. `--` ends the flags. Each command declares its flags as FlagSpecs,
// which also produce its --help text.
//
// FlagReader turns flag text into typed values; it records the first error
// (always INVALID_ARGUMENT, naming the flag) so a command can read all of
// its flags and check once.
#ifndef LETHE_SERVER_CLI_FLAGS_H_
#define LETHE_SERVER_CLI_FLAGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/generated_enum_reflection.h"
#include "google/protobuf/timestamp.pb.h"

namespace lethe::cli {

struct FlagSpec {
  absl::string_view name;   // without the leading "--"
  absl::string_view value;  // placeholder such as "ID"; empty for a switch
  absl::string_view help;
  bool repeated = false;
};

class ParsedFlags {
 public:
  bool Has(absl::string_view name) const;
  // The value of a flag, or `fallback` when it was not given.
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

// Fails with INVALID_ARGUMENT on an unknown flag, a missing value, a switch
// given a value, or a non-repeatable flag given twice.
absl::StatusOr<ParsedFlags> ParseFlags(std::span<const FlagSpec> specs,
                                       std::span<const std::string> args);

// One line per flag, aligned, for --help.
std::string FormatFlagHelp(std::span<const FlagSpec> specs);

// Splits "a,b,,c" into {"a", "b", "c"}.
std::vector<std::string> SplitList(absl::string_view text);

class FlagReader {
 public:
  explicit FlagReader(const ParsedFlags& flags) : flags_(flags) {}

  // The value of a flag that must be given (and not be empty).
  std::string Required(absl::string_view name);
  // Typed values of optional flags: nullopt when absent or malformed (the
  // error is recorded).
  std::optional<int64_t> Int(absl::string_view name, int64_t min, int64_t max);
  std::optional<double> Double(absl::string_view name, double min, double max);
  // Accepts the names enum_names.h documents; never the UNSPECIFIED value.
  std::optional<int> EnumValue(absl::string_view name,
                               const google::protobuf::EnumDescriptor& type);
  template <typename E>
  std::optional<E> Enum(absl::string_view name) {
    auto v = EnumValue(name, *google::protobuf::GetEnumDescriptor<E>());
    if (!v) return std::nullopt;
    return static_cast<E>(*v);
  }
  // A comma-separated list of integers in [min, max], e.g. "1,28,28".
  std::optional<std::vector<int64_t>> IntList(absl::string_view name,
                                              int64_t min, int64_t max);

  // Records an error of the caller's own (first error wins).
  void Fail(std::string message);
  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }

 private:
  const ParsedFlags& flags_;
  absl::Status status_;
};

// The time of an RFC 3339 flag, when given; on a malformed value reports
// the error through `reader` and returns nullopt.
std::optional<google::protobuf::Timestamp> ReadTime(FlagReader& reader,
                                                    const ParsedFlags& flags,
                                                    absl::string_view name);

}  // namespace lethe::cli

#endif  // LETHE_SERVER_CLI_FLAGS_H_

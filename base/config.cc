#include "base/config.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/file.h"
#include "base/flags.h"

namespace lethe::base {
namespace {

// `name = value` lines; blank lines and lines starting with # are skipped.
absl::Status ReadConfigFile(const std::string& path,
                            std::map<std::string, std::string>& out) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot read config file ", path, ": ", text.status().message()));
  }
  int lineno = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++lineno;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", lineno, ": expected `name = value`"));
    }
    out[std::string(absl::StripAsciiWhitespace(line.substr(0, eq)))] =
        std::string(absl::StripAsciiWhitespace(line.substr(eq + 1)));
  }
  return absl::OkStatus();
}

// The options as flags, plus --config and --help. Every flag may be
// repeated: the last value counts.
std::vector<FlagSpec> FlagSpecs(const std::vector<OptionSpec>& specs) {
  std::vector<FlagSpec> flags;
  flags.reserve(specs.size() + 2);
  for (const OptionSpec& s : specs) {
    flags.push_back({s.name, s.default_value == "false" ? "" : "VALUE", s.help,
                     /*repeated=*/true});
  }
  flags.push_back({"config", "FILE", "", /*repeated=*/true});
  flags.push_back({"help", "", "", /*repeated=*/true});
  return flags;
}

// `-h` is `--help` (up to a `--`).
std::vector<std::string> WithLongHelp(std::vector<std::string> args) {
  for (std::string& a : args) {
    if (a == "--") break;
    if (a == "-h") a = "--help";
  }
  return args;
}

absl::StatusOr<std::map<std::string, std::string>> FileValues(
    const std::vector<OptionSpec>& specs, std::string path) {
  std::map<std::string, std::string> values;
  if (path.empty()) {
    if (const char* env = std::getenv("LETHE_CONFIG")) path = env;
  }
  if (path.empty()) return values;
  if (auto st = ReadConfigFile(path, values); !st.ok()) return st;
  for (const auto& entry : values) {
    const std::string& name = entry.first;
    const bool known =
        std::any_of(specs.begin(), specs.end(),
                    [&](const OptionSpec& s) { return s.name == name; });
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": unknown option '", name, "'"));
    }
  }
  return values;
}

template <typename T, typename Parse>
absl::StatusOr<T> GetNumber(const Config& cfg, const std::string& name,
                            const char* what, Parse parse) {
  T v{};
  if (!parse(cfg.Get(name), &v)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, " must be ", what, ", got '", cfg.Get(name), "'"));
  }
  return v;
}

}  // namespace

std::string Config::EnvName(const std::string& option) {
  std::string env = "LETHE_" + option;
  for (char& c : env) c = c == '-' ? '_' : absl::ascii_toupper(c);
  return env;
}

absl::StatusOr<Config> Config::Parse(const std::vector<OptionSpec>& specs,
                                     const std::vector<std::string>& args) {
  const std::vector<FlagSpec> flag_specs = FlagSpecs(specs);
  absl::StatusOr<ParsedFlags> flags =
      ParseFlags(flag_specs, WithLongHelp(args));
  if (!flags.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flags.status().message(), "; see --help"));
  }
  auto file_values = FileValues(specs, flags->Get("config"));
  if (!file_values.ok()) return file_values.status();
  Config cfg;
  cfg.help_ = flags->Switch("help");
  cfg.positional_ = flags->positionals();
  for (const OptionSpec& s : specs) {
    std::string value = s.default_value;
    if (auto it = file_values->find(s.name); it != file_values->end()) {
      value = it->second;
    }
    if (const char* env = std::getenv(EnvName(s.name).c_str())) value = env;
    cfg.values_[s.name] = flags->Get(s.name, value);
  }
  return cfg;
}

const std::string& Config::Get(const std::string& name) const {
  static const std::string* empty = new std::string();
  auto it = values_.find(name);
  return it == values_.end() ? *empty : it->second;
}

absl::StatusOr<int> Config::GetInt(const std::string& name) const {
  return GetNumber<int>(
      *this, name, "an integer",
      [](absl::string_view s, int* v) { return absl::SimpleAtoi(s, v); });
}

absl::StatusOr<int64_t> Config::GetInt64(const std::string& name) const {
  return GetNumber<int64_t>(
      *this, name, "an integer",
      [](absl::string_view s, int64_t* v) { return absl::SimpleAtoi(s, v); });
}

absl::StatusOr<double> Config::GetDouble(const std::string& name) const {
  return GetNumber<double>(
      *this, name, "a number",
      [](absl::string_view s, double* v) { return absl::SimpleAtod(s, v); });
}

bool Config::GetBool(const std::string& name) const {
  const std::string& v = Get(name);
  return v == "true" || v == "1" || v == "yes";
}

std::string Config::Usage(const std::vector<OptionSpec>& specs) {
  std::string out;
  for (const auto& s : specs) {
    absl::StrAppend(&out, "  --", s.name, " (", EnvName(s.name));
    if (!s.default_value.empty()) {
      absl::StrAppend(&out, ", default: ", s.default_value);
    }
    absl::StrAppend(&out, ")\n      ", s.help, "\n");
  }
  absl::StrAppend(&out,
                  "  --config FILE (LETHE_CONFIG)\n"
                  "      file of `name = value` lines for any option above\n");
  return out;
}

}  // namespace lethe::base

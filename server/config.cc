#include "server/config.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace lethe::server {
namespace {

absl::Status ReadConfigFile(const std::string& path,
                            std::map<std::string, std::string>& out) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read config file ", path));
  }
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text[0] == '#') continue;
    const size_t eq = text.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", lineno, ": expected `name = value`"));
    }
    out[std::string(absl::StripAsciiWhitespace(text.substr(0, eq)))] =
        std::string(absl::StripAsciiWhitespace(text.substr(eq + 1)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string Config::EnvName(const std::string& option) {
  std::string env = "LETHE_" + option;
  for (char& c : env) c = c == '-' ? '_' : absl::ascii_toupper(c);
  return env;
}

absl::StatusOr<Config> Config::Parse(const std::vector<OptionSpec>& specs,
                                     const std::vector<std::string>& args) {
  Config cfg;
  std::map<std::string, const OptionSpec*> known;
  for (const auto& s : specs) known[s.name] = &s;
  std::map<std::string, std::string> flags;
  std::string config_file;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      cfg.help_ = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) {
      cfg.positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (known.count(name) && known[name]->default_value == "false") {
      value = "true";  // boolean switch
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", name, " needs a value"));
    }
    if (name == "config") {
      config_file = value;
      continue;
    }
    if (!known.count(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, "; see --help"));
    }
    flags[name] = value;
  }
  std::map<std::string, std::string> file_values;
  if (config_file.empty()) {
    if (const char* env = std::getenv("LETHE_CONFIG")) config_file = env;
  }
  if (!config_file.empty()) {
    if (auto st = ReadConfigFile(config_file, file_values); !st.ok()) return st;
    for (const auto& [name, value] : file_values) {
      if (!known.count(name)) {
        return absl::InvalidArgumentError(absl::StrCat(
            config_file, ": unknown option '", name, "'"));
      }
    }
  }
  for (const auto& s : specs) {
    std::string value = s.default_value;
    if (auto it = file_values.find(s.name); it != file_values.end()) {
      value = it->second;
    }
    if (const char* env = std::getenv(EnvName(s.name).c_str())) value = env;
    if (auto it = flags.find(s.name); it != flags.end()) value = it->second;
    cfg.values_[s.name] = value;
  }
  return cfg;
}

const std::string& Config::Get(const std::string& name) const {
  static const std::string* empty = new std::string();
  auto it = values_.find(name);
  return it == values_.end() ? *empty : it->second;
}

absl::StatusOr<int> Config::GetInt(const std::string& name) const {
  int v = 0;
  if (!absl::SimpleAtoi(Get(name), &v)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, " must be an integer, got '", Get(name), "'"));
  }
  return v;
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

}  // namespace lethe::server

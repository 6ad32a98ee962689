#include "base/flags.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lethe::base {
namespace {

const FlagSpec* FindSpec(std::span<const FlagSpec> specs,
                         absl::string_view name) {
  for (const FlagSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

// The value of `--name[=inline]` at args[*i], advancing *i past a value
// taken from the next argument.
absl::StatusOr<std::string> FlagValue(const FlagSpec& spec,
                                      std::optional<std::string> inline_value,
                                      std::span<const std::string> args,
                                      size_t* i) {
  if (spec.value.empty()) {
    if (!inline_value) return std::string("true");
    if (*inline_value == "true" || *inline_value == "false") {
      return *std::move(inline_value);
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "--", spec.name, " takes no value (other than =true or =false)"));
  }
  if (inline_value) return *std::move(inline_value);
  if (*i + 1 == args.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", spec.name, " needs a value: --", spec.name, " ", spec.value));
  }
  return args[++*i];
}

template <typename T>
bool ParseNumber(absl::string_view text, T* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty();
}

std::string NumberText(int64_t n) { return absl::StrCat(n); }
std::string NumberText(double n) { return absl::StrFormat("%.15g", n); }

// "in [1, 1000]", or ">= 1" when the upper bound is only the type's.
template <typename T>
std::string RangeText(T min, T max) {
  if (max == std::numeric_limits<T>::max()) {
    return absl::StrCat(">= ", NumberText(min));
  }
  return absl::StrCat("in [", NumberText(min), ", ", NumberText(max), "]");
}

}  // namespace

bool ParsedFlags::Has(absl::string_view name) const {
  return values_.find(name) != values_.end();
}

bool ParsedFlags::Switch(absl::string_view name) const {
  return Has(name) && Get(name) != "false";
}

std::string ParsedFlags::Get(absl::string_view name,
                             absl::string_view fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::string(fallback) : it->second.back();
}

std::vector<std::string> ParsedFlags::GetList(absl::string_view name) const {
  std::vector<std::string> out;
  auto it = values_.find(name);
  if (it == values_.end()) return out;
  for (const std::string& value : it->second) {
    for (std::string& item : SplitList(value)) out.push_back(std::move(item));
  }
  return out;
}

absl::StatusOr<ParsedFlags> ParseFlags(std::span<const FlagSpec> specs,
                                       std::span<const std::string> args) {
  ParsedFlags parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--") {
      parsed.positionals_.insert(parsed.positionals_.end(),
                                 args.begin() + i + 1, args.end());
      break;
    }
    if (!absl::StartsWith(arg, "--")) {
      if (arg.size() > 1 && absl::StartsWith(arg, "-")) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown flag '", arg, "' (flags start with --)"));
      }
      parsed.positionals_.emplace_back(arg);
      continue;
    }
    arg.remove_prefix(2);
    std::optional<std::string> inline_value;
    if (const size_t eq = arg.find('='); eq != absl::string_view::npos) {
      inline_value = std::string(arg.substr(eq + 1));
      arg = arg.substr(0, eq);
    }
    const FlagSpec* spec = FindSpec(specs, arg);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag '--", arg, "'"));
    }
    absl::StatusOr<std::string> value =
        FlagValue(*spec, std::move(inline_value), args, &i);
    if (!value.ok()) return value.status();
    std::vector<std::string>& slot = parsed.values_[std::string(arg)];
    if (!slot.empty() && !spec->repeated) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", arg, " given more than once"));
    }
    slot.push_back(*std::move(value));
  }
  return parsed;
}

std::string FormatFlagHelp(std::span<const FlagSpec> specs) {
  std::vector<std::string> left;
  size_t width = 0;
  for (const FlagSpec& spec : specs) {
    std::string text = absl::StrCat("  --", spec.name);
    if (!spec.value.empty()) absl::StrAppend(&text, " ", spec.value);
    if (spec.repeated) absl::StrAppend(&text, " ...");
    width = std::max(width, text.size());
    left.push_back(std::move(text));
  }
  std::string out;
  for (size_t i = 0; i < specs.size(); ++i) {
    absl::StrAppend(&out, left[i], std::string(width + 2 - left[i].size(), ' '),
                    specs[i].help, "\n");
  }
  return out;
}

std::vector<std::string> SplitList(absl::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const size_t comma = std::min(text.find(','), text.size());
    if (comma > 0) out.emplace_back(text.substr(0, comma));
    text.remove_prefix(std::min(comma + 1, text.size()));
  }
  return out;
}

std::string FlagReader::Required(absl::string_view name) {
  std::string value = flags_.Get(name);
  if (value.empty()) Fail(absl::StrCat("--", name, " is required"));
  return value;
}

std::optional<int64_t> FlagReader::Int(absl::string_view name, int64_t min,
                                       int64_t max) {
  if (!flags_.Has(name)) return std::nullopt;
  int64_t value = 0;
  if (!ParseNumber(flags_.Get(name), &value) || value < min || value > max) {
    Fail(absl::StrCat("--", name, " must be an integer ", RangeText(min, max),
                      ", not '", flags_.Get(name), "'"));
    return std::nullopt;
  }
  return value;
}

std::optional<double> FlagReader::Double(absl::string_view name, double min,
                                         double max) {
  if (!flags_.Has(name)) return std::nullopt;
  double value = 0;
  if (!ParseNumber(flags_.Get(name), &value) || !(value >= min) ||
      !(value <= max)) {
    Fail(absl::StrCat("--", name, " must be a number ", RangeText(min, max),
                      ", not '", flags_.Get(name), "'"));
    return std::nullopt;
  }
  return value;
}

std::optional<std::vector<int64_t>> FlagReader::IntList(absl::string_view name,
                                                        int64_t min,
                                                        int64_t max) {
  if (!flags_.Has(name)) return std::nullopt;
  std::vector<int64_t> out;
  for (const std::string& item : SplitList(flags_.Get(name))) {
    int64_t value = 0;
    if (!ParseNumber(absl::string_view(item), &value) || value < min ||
        value > max) {
      Fail(absl::StrCat("--", name, " must be a comma-separated list of ",
                        "integers ", RangeText(min, max), ", not '",
                        flags_.Get(name), "'"));
      return std::nullopt;
    }
    out.push_back(value);
  }
  if (out.empty()) Fail(absl::StrCat("--", name, " must not be empty"));
  return out;
}

void FlagReader::Fail(absl::string_view message) {
  if (status_.ok()) status_ = absl::InvalidArgumentError(message);
}

}  // namespace lethe::base

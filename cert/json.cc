#include "cert/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "absl/strings/str_cat.h"
#include "base/json.h"

namespace lethe::cert {
namespace {

constexpr int kMaxDepth = 64;

void DumpDouble(double v, std::string* out) {
  if (!std::isfinite(v)) {
    out->append("null");
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, res.ptr);
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  absl::StatusOr<Json> ParseDocument() {
    auto value = ParseValue(0);
    if (!value.ok()) return value;
    SkipSpace();
    if (pos_ != text_.size()) return Error("trailing characters");
    return value;
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("JSON: ", std::string(what), " at offset ", pos_));
  }

  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' ||
            text_[pos_] == '\t')) {
      ++pos_;
    }
  }

  bool Consume(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  absl::StatusOr<Json> ParseValue(int depth) {
    if (depth > kMaxDepth) return Error("nesting too deep");
    SkipSpace();
    if (pos_ >= text_.size()) return Error("unexpected end");
    const char c = text_[pos_];
    if (c == '{') return ParseObject(depth);
    if (c == '[') return ParseArray(depth);
    if (c == '"') {
      auto s = ParseString();
      if (!s.ok()) return s.status();
      return Json(*std::move(s));
    }
    if (Consume("true")) return Json(true);
    if (Consume("false")) return Json(false);
    if (Consume("null")) return Json();
    return ParseNumber();
  }

  absl::StatusOr<Json> ParseObject(int depth) {
    ++pos_;
    Json::Object object;
    SkipSpace();
    if (Consume("}")) return Json(std::move(object));
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"') {
        return Error("expected a string key");
      }
      auto key = ParseString();
      if (!key.ok()) return key.status();
      SkipSpace();
      if (!Consume(":")) return Error("expected ':'");
      auto value = ParseValue(depth + 1);
      if (!value.ok()) return value;
      if (!object.emplace(*std::move(key), *std::move(value)).second) {
        return Error("duplicate key");
      }
      SkipSpace();
      if (Consume("}")) return Json(std::move(object));
      if (!Consume(",")) return Error("expected ',' or '}'");
    }
  }

  absl::StatusOr<Json> ParseArray(int depth) {
    ++pos_;
    Json::Array array;
    SkipSpace();
    if (Consume("]")) return Json(std::move(array));
    while (true) {
      auto value = ParseValue(depth + 1);
      if (!value.ok()) return value;
      array.push_back(*std::move(value));
      SkipSpace();
      if (Consume("]")) return Json(std::move(array));
      if (!Consume(",")) return Error("expected ',' or ']'");
    }
  }

  absl::StatusOr<uint32_t> ParseHex4() {
    if (pos_ + 4 > text_.size()) return Error("short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      int d = -1;
      if (c >= '0' && c <= '9') d = c - '0';
      if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      if (d < 0) return Error("bad \\u escape");
      v = v << 4 | static_cast<uint32_t>(d);
    }
    return v;
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | cp >> 6));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | cp >> 12));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | cp >> 18));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  absl::StatusOr<std::string> ParseString() {
    ++pos_;
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) return Error("unterminated string");
      const unsigned char c = static_cast<unsigned char>(text_[pos_++]);
      if (c == '"') return out;
      if (c < 0x20) return Error("control character in string");
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        continue;
      }
      if (pos_ >= text_.size()) return Error("unterminated escape");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          auto cp = ParseHex4();
          if (!cp.ok()) return cp.status();
          uint32_t code = *cp;
          if (code >= 0xd800 && code < 0xdc00) {
            if (!Consume("\\u")) return Error("lone surrogate");
            auto low = ParseHex4();
            if (!low.ok()) return low.status();
            if (*low < 0xdc00 || *low >= 0xe000) return Error("bad surrogate");
            code = 0x10000 + ((code - 0xd800) << 10) + (*low - 0xdc00);
          } else if (code >= 0xdc00 && code < 0xe000) {
            return Error("lone surrogate");
          }
          AppendUtf8(code, &out);
          break;
        }
        default:
          return Error("bad escape");
      }
    }
  }

  absl::StatusOr<Json> ParseNumber() {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
        ++pos_;
      }
      return pos_ - from;
    };
    if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
    const size_t int_start = pos_;
    const size_t n = digits();
    if (n == 0) return Error("unexpected character");
    if (n > 1 && text_[int_start] == '0') return Error("leading zero");
    bool integral = true;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      integral = false;
      if (digits() == 0) return Error("digit expected after '.'");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      integral = false;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) {
        ++pos_;
      }
      if (digits() == 0) return Error("digit expected in exponent");
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    if (integral) {
      int64_t v = 0;
      auto res = std::from_chars(first, last, v);
      if (res.ec == std::errc() && res.ptr == last) return Json(v);
    }
    double d = 0;
    auto res = std::from_chars(first, last, d);
    if (res.ec != std::errc() || res.ptr != last || !std::isfinite(d)) {
      return Error("number out of range");
    }
    return Json(d);
  }

  std::string_view text_;
  size_t pos_ = 0;
};

void DumpTo(const Json& v, std::string* out) {
  if (v.is_null()) {
    out->append("null");
  } else if (v.is_int()) {
    absl::StrAppend(out, v.as_int());
  } else if (v.is_number()) {
    DumpDouble(v.as_double(), out);
  } else if (v.is_string()) {
    base::AppendJsonString(out, v.as_string(), base::JsonString::kCanonical);
  } else if (v.is_array()) {
    out->push_back('[');
    bool first = true;
    for (const Json& e : v.as_array()) {
      if (!first) out->push_back(',');
      first = false;
      DumpTo(e, out);
    }
    out->push_back(']');
  } else if (v.is_object()) {
    out->push_back('{');
    bool first = true;
    for (const auto& [key, value] : v.as_object()) {
      if (!first) out->push_back(',');
      first = false;
      base::AppendJsonString(out, key, base::JsonString::kCanonical);
      out->push_back(':');
      DumpTo(value, out);
    }
    out->push_back('}');
  } else {
    out->append(v.as_bool() ? "true" : "false");
  }
}

}  // namespace

double Json::as_double() const {
  if (is_int()) return static_cast<double>(as_int());
  return std::get<double>(value_);
}

std::string Json::Dump() const {
  std::string out;
  DumpTo(*this, &out);
  return out;
}

absl::StatusOr<Json> Json::Parse(std::string_view text) {
  return Parser(text).ParseDocument();
}

absl::Status JsonReader::Missing(std::string_view key,
                                 std::string_view type) const {
  return absl::InvalidArgumentError(absl::StrCat(
      where_, ": \"", std::string(key), "\" must be ", std::string(type)));
}

absl::Status JsonReader::CheckKeys(
    std::initializer_list<std::string_view> allowed) const {
  if (!object_.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where_, ": not an object"));
  }
  for (const auto& [key, value] : object_.as_object()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || a == key;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat(where_, ": unknown field \"", key, "\""));
    }
  }
  return absl::OkStatus();
}

bool JsonReader::Has(std::string_view key) const {
  return object_.is_object() && object_.as_object().count(key) > 0;
}

absl::StatusOr<const Json*> JsonReader::Get(std::string_view key) const {
  if (!object_.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where_, ": not an object"));
  }
  auto it = object_.as_object().find(key);
  if (it == object_.as_object().end()) return Missing(key, "present");
  return &it->second;
}

absl::StatusOr<std::string> JsonReader::String(std::string_view key) const {
  auto v = Get(key);
  if (!v.ok()) return v.status();
  if (!(*v)->is_string()) return Missing(key, "a string");
  return (*v)->as_string();
}

absl::StatusOr<int64_t> JsonReader::Int(std::string_view key) const {
  auto v = Get(key);
  if (!v.ok()) return v.status();
  if (!(*v)->is_int()) return Missing(key, "an integer");
  return (*v)->as_int();
}

absl::StatusOr<double> JsonReader::Number(std::string_view key) const {
  auto v = Get(key);
  if (!v.ok()) return v.status();
  if (!(*v)->is_number()) return Missing(key, "a number");
  return (*v)->as_double();
}

absl::StatusOr<const Json::Array*> JsonReader::Array(
    std::string_view key) const {
  auto v = Get(key);
  if (!v.ok()) return v.status();
  if (!(*v)->is_array()) return Missing(key, "an array");
  return &(*v)->as_array();
}

}  // namespace lethe::cert

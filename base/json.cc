#include "base/json.h"

#include "base/utf8.h"

namespace lethe::base {
namespace {

// The escape of an ASCII byte, or nullptr when it is written as it is.
// DEL is escaped only in kValidUtf8 (the caller decides).
const char* NamedEscape(unsigned char c) {
  switch (c) {
    case '"':
      return "\\\"";
    case '\\':
      return "\\\\";
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    case '\b':
      return "\\b";
    case '\f':
      return "\\f";
    default:
      return nullptr;
  }
}

void AppendUnicodeEscape(std::string* out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->append("\\u00");
  out->push_back(kHex[c >> 4]);
  out->push_back(kHex[c & 0xf]);
}

}  // namespace

void AppendJsonString(std::string* out, std::string_view s, JsonString mode) {
  const bool valid_utf8 = mode == JsonString::kValidUtf8;
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80 && valid_utf8) {
      const size_t n = Utf8SequenceLength(s, i);
      if (n == 0) {
        out->append("\\ufffd");
        ++i;
      } else {
        out->append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    if (const char* named = NamedEscape(c)) {
      out->append(named);
    } else if (c < 0x20 || (c == 0x7f && valid_utf8)) {
      AppendUnicodeEscape(out, c);
    } else {
      out->push_back(static_cast<char>(c));
    }
    ++i;
  }
  out->push_back('"');
}

}  // namespace lethe::base

// The few UnlearningPolicy fields the queue reads, from the policy's
// protobuf JSON. PostgreSQL reads them with ->> and a cast; this is the
// smallest parser that finds a member of an object and skips the rest.
#include <optional>

#include "absl/strings/numbers.h"
#include "storage/memory/core.h"

namespace lethe::storage::memory {
namespace {

class Scanner {
 public:
  explicit Scanner(std::string_view text) : s_(text) {}

  // The raw text of member `key` of the object at the start; nullopt when
  // absent or malformed.
  std::optional<std::string_view> Member(std::string_view key) {
    Ws();
    if (!Eat('{')) return std::nullopt;
    Ws();
    if (Eat('}')) return std::nullopt;
    for (;;) {
      std::string name;
      Ws();
      if (!String(&name)) return std::nullopt;
      Ws();
      if (!Eat(':')) return std::nullopt;
      Ws();
      const size_t start = i_;
      if (!Skip()) return std::nullopt;
      if (name == key) return s_.substr(start, i_ - start);
      Ws();
      if (!Eat(',')) return std::nullopt;
    }
  }

 private:
  void Ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' ||
                              s_[i_] == '\t' || s_[i_] == '\r')) {
      ++i_;
    }
  }
  bool Eat(char c) {
    if (i_ >= s_.size() || s_[i_] != c) return false;
    ++i_;
    return true;
  }
  // A string; escapes are kept as the character after the backslash
  // (enough for member names, which are plain ASCII in protobuf JSON).
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') ++i_;
      if (i_ < s_.size()) out->push_back(s_[i_++]);
    }
    return Eat('"');
  }
  // Any value: strings, or balanced brackets with strings inside, or a
  // scalar up to the next delimiter.
  bool Skip() {
    if (i_ < s_.size() && s_[i_] == '"') {
      std::string ignored;
      return String(&ignored);
    }
    int depth = 0;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '"') {
        std::string ignored;
        if (!String(&ignored)) return false;
        continue;
      }
      if (depth == 0 && (c == ',' || c == '}' || c == ']')) return true;
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') --depth;
      ++i_;
      if (depth == 0 && (c == '}' || c == ']')) return true;
    }
    return depth == 0;
  }

  std::string_view s_;
  size_t i_ = 0;
};

std::string_view Unquote(std::string_view raw) {
  if (raw.size() >= 2 && raw.front() == '"' && raw.back() == '"') {
    return raw.substr(1, raw.size() - 2);
  }
  return raw;
}

int IntMember(std::string_view json, std::string_view key) {
  auto raw = Scanner(json).Member(key);
  int value = 0;
  if (!raw) return 0;
  const std::string_view text = Unquote(*raw);
  if (!absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &value)) {
    return 0;
  }
  return value;
}

}  // namespace

Policy ParsePolicy(std::string_view json) {
  Policy p;
  p.batch_size = IntMember(json, "batchSize");
  p.max_attempts = IntMember(json, "maxAttempts");
  p.batch_window_seconds = IntMember(json, "batchWindowSeconds");
  if (auto sisa = Scanner(json).Member("sisa")) {
    p.sisa_shards = IntMember(*sisa, "shards");
  }
  if (auto device = Scanner(json).Member("device")) {
    p.device = std::string(Unquote(*device));
  }
  return p;
}

std::string RecipeSeed(std::string_view recipe_json) {
  auto raw = Scanner(recipe_json).Member("seed");
  uint64_t value = 0;
  if (!raw) return "0";
  const std::string_view text = Unquote(*raw);
  if (!absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &value)) {
    return "0";
  }
  return std::to_string(value);
}

bool DeviceAllows(const Policy& policy, const std::string& device_kind) {
  if (device_kind.empty() || policy.device.empty() ||
      policy.device == "DEVICE_REQUIREMENT_ANY") {
    return true;
  }
  return policy.device == (device_kind == "cuda" ? "DEVICE_REQUIREMENT_CUDA"
                                                 : "DEVICE_REQUIREMENT_CPU");
}

}  // namespace lethe::storage::memory

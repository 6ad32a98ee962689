// A small JSON value with one deterministic serialisation, for what cert/
// signs and hashes: object keys sorted by byte value, no whitespace, strings
// as UTF-8 with only `"`, `\` and control characters escaped, integers as
// decimal, other numbers in the shortest form that reads back exactly.
//
// The parser is strict RFC 8259 (no trailing commas, no leading zeros, no
// duplicate keys, depth at most 64); it also accepts whitespace, so it reads
// JSON written by other tools. Numbers without fraction or exponent that fit
// in int64 stay integers.
#ifndef LETHE_CERT_JSON_H_
#define LETHE_CERT_JSON_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace lethe::cert {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json, std::less<>>;

  Json() = default;                                // null
  Json(bool v) : value_(v) {}                      // NOLINT
  Json(int v) : value_(int64_t{v}) {}              // NOLINT
  Json(int64_t v) : value_(v) {}                   // NOLINT
  Json(double v) : value_(v) {}                    // NOLINT
  Json(const char* v) : value_(std::string(v)) {}  // NOLINT
  Json(std::string v) : value_(std::move(v)) {}    // NOLINT
  Json(Array v) : value_(std::move(v)) {}          // NOLINT
  Json(Object v) : value_(std::move(v)) {}         // NOLINT

  bool is_null() const { return value_.index() == 0; }
  bool is_int() const { return std::holds_alternative<int64_t>(value_); }
  bool is_number() const {
    return is_int() || std::holds_alternative<double>(value_);
  }
  bool is_string() const { return std::holds_alternative<std::string>(value_); }
  bool is_array() const { return std::holds_alternative<Array>(value_); }
  bool is_object() const { return std::holds_alternative<Object>(value_); }

  // Preconditions: the matching is_*() holds.
  bool as_bool() const { return std::get<bool>(value_); }
  int64_t as_int() const { return std::get<int64_t>(value_); }
  double as_double() const;  // ints convert
  const std::string& as_string() const { return std::get<std::string>(value_); }
  const Array& as_array() const { return std::get<Array>(value_); }
  const Object& as_object() const { return std::get<Object>(value_); }

  // The deterministic form described above. Non-finite numbers are
  // written as null (Statement building refuses them before).
  std::string Dump() const;
  // INVALID_ARGUMENT naming the offset of the first error.
  static absl::StatusOr<Json> Parse(std::string_view text);

  bool operator==(const Json& other) const = default;

 private:
  std::variant<std::monostate, bool, int64_t, double, std::string, Array,
               Object>
      value_;
};

// Typed access to members of a JSON object, for decoders. Each returns
// INVALID_ARGUMENT naming `where` and the key when the member is missing or
// of another type.
class JsonReader {
 public:
  JsonReader(const Json& object, std::string where)
      : object_(object), where_(std::move(where)) {}

  // INVALID_ARGUMENT unless the value is an object whose keys are all in
  // `allowed`.
  absl::Status CheckKeys(std::initializer_list<std::string_view> allowed) const;
  bool Has(std::string_view key) const;
  absl::StatusOr<std::string> String(std::string_view key) const;
  absl::StatusOr<int64_t> Int(std::string_view key) const;
  absl::StatusOr<double> Number(std::string_view key) const;
  absl::StatusOr<const Json*> Get(std::string_view key) const;
  absl::StatusOr<const Json::Array*> Array(std::string_view key) const;

 private:
  absl::Status Missing(std::string_view key, std::string_view type) const;

  const Json& object_;
  const std::string where_;
};

}  // namespace lethe::cert

#endif  // LETHE_CERT_JSON_H_

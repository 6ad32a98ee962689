// Byte encodings and SHA-256 for cert/: hex, standard base64 (RFC 4648 §4,
// padded) and base64url (§5, unpadded, as JWK wants it).
//
// The decoders are strict: they accept exactly the text their encoders
// produce (no whitespace, canonical padding, zero trailing bits), so that
// every bit of a signed or hashed encoding matters.
#ifndef LETHE_CERT_ENCODING_H_
#define LETHE_CERT_ENCODING_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::cert {

inline constexpr size_t kSha256Bytes = 32;

// Raw 32-byte digest.
std::string Sha256(std::string_view data);

std::string HexEncode(std::string_view bytes);  // lower case
// nullopt unless `hex` is an even-length string of [0-9a-f] (lower case).
std::optional<std::string> HexDecode(std::string_view hex);

std::string Base64Encode(std::string_view bytes);
std::optional<std::string> Base64Decode(std::string_view text);
std::string Base64UrlEncode(std::string_view bytes);

// Splits at every `sep` (n separators give n + 1 pieces).
std::vector<std::string_view> Split(std::string_view text, char sep);
// Without leading and trailing spaces and tabs.
std::string_view Trim(std::string_view text);

// RFC 3339 in UTC with microseconds ("2025-01-01T00:00:00.000000Z"), from
// microseconds since the epoch, and back (any RFC 3339 offset accepted;
// nullopt for anything else).
std::string FormatTime(int64_t micros);
std::optional<int64_t> ParseTime(std::string_view text);

}  // namespace lethe::cert

#endif  // LETHE_CERT_ENCODING_H_

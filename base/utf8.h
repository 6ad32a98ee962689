// UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates
// (U+D800..U+DFFF), nothing above U+10FFFF. One decoder for the whole tree:
// the validation of subject ids and names (validate/) and the JSON writers
// (base/json.h) agree on what is valid.
#ifndef LETHE_BASE_UTF8_H_
#define LETHE_BASE_UTF8_H_

#include <cstddef>
#include <string_view>

namespace lethe::base {

// The length (1..4) of the valid UTF-8 sequence that starts at s[i], or 0
// when none starts there (a stray continuation byte, a bad lead byte, a
// truncated, overlong or surrogate sequence). Requires i < s.size().
size_t Utf8SequenceLength(std::string_view s, size_t i);

// Whether all of `s` is valid UTF-8.
bool IsValidUtf8(std::string_view s);

}  // namespace lethe::base

#endif  // LETHE_BASE_UTF8_H_

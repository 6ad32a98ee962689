// base/json.h and base/utf8.h: the one JSON string writer (both modes) and
// the one UTF-8 decoder.
#include "base/json.h"

#include <string>
#include <string_view>

#include "base/utf8.h"
#include "gtest/gtest.h"

namespace lethe::base {
namespace {

std::string Json(std::string_view s, JsonString mode) {
  std::string out;
  AppendJsonString(&out, s, mode);
  return out;
}

TEST(JsonStringTest, EscapesQuotesBackslashAndControlsInBothModes) {
  for (JsonString mode : {JsonString::kCanonical, JsonString::kValidUtf8}) {
    EXPECT_EQ(Json("a\"b\\c", mode), R"("a\"b\\c")");
    EXPECT_EQ(Json("\n\r\t\b\f", mode), R"("\n\r\t\b\f")");
    EXPECT_EQ(Json(std::string_view("\x00\x01\x1f", 3), mode),
              R"("\u0000\u0001\u001f")");
    EXPECT_EQ(Json("caf\xc3\xa9 \xf0\x9f\x98\x80", mode),
              "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
  }
}

TEST(JsonStringTest, CanonicalKeepsEveryOtherByteAsItIs) {
  // The certificate format's bytes: DEL and stray bytes pass through.
  EXPECT_EQ(Json("\x7f", JsonString::kCanonical), "\"\x7f\"");
  EXPECT_EQ(Json("a\xff", JsonString::kCanonical), "\"a\xff\"");
}

TEST(JsonStringTest, ValidUtf8ReplacesBadBytesAndEscapesDel) {
  EXPECT_EQ(Json("\x7f", JsonString::kValidUtf8), R"("\u007f")");
  EXPECT_EQ(Json("a\xff"
                 "b",
                 JsonString::kValidUtf8),
            R"("a\ufffdb")");
  // An overlong '/' (C0 AF): each byte replaced, and the output is valid.
  const std::string out = Json("\xc0\xaf", JsonString::kValidUtf8);
  EXPECT_EQ(out, R"("\ufffd\ufffd")");
  EXPECT_TRUE(IsValidUtf8(out));
}

TEST(Utf8Test, AcceptsEveryFormAndRejectsWhatRfc3629Forbids) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("ascii"));
  EXPECT_TRUE(IsValidUtf8("\xc2\x80"));                  // U+0080
  EXPECT_TRUE(IsValidUtf8("\xed\x9f\xbf"));              // U+D7FF
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));          // U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));                 // overlong
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));             // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));             // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));         // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xf5\x80\x80\x80"));         // lead byte F5
  EXPECT_FALSE(IsValidUtf8("\x80"));                     // stray continuation
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));                 // truncated
  EXPECT_EQ(Utf8SequenceLength("\xe2\x82\xac", 0), 3u);  // U+20AC
  EXPECT_EQ(Utf8SequenceLength("a\xe2\x82\xac", 0), 1u);
  EXPECT_EQ(Utf8SequenceLength("\xe2\x82", 0), 0u);
}

}  // namespace
}  // namespace lethe::base

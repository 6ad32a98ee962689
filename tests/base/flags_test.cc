#include "base/flags.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace lethe::base {
namespace {

constexpr FlagSpec kSpecs[] = {
    {"name", "NAME", "a name"},
    {"model", "ID", "a model", /*repeated=*/true},
    {"json", "", "a switch"},
    {"count", "N", "a number"},
};

absl::StatusOr<ParsedFlags> Parse(std::vector<std::string> args) {
  return ParseFlags(kSpecs, args);
}

TEST(FlagsTest, ReadsBothValueFormsSwitchesAndPositionalsInAnyOrder) {
  auto flags = Parse({"a", "--name", "x", "--json", "b", "--count=3"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->Get("name"), "x");
  EXPECT_EQ(flags->Get("count"), "3");
  EXPECT_TRUE(flags->Switch("json"));
  EXPECT_EQ(flags->positionals(), (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(flags->Has("model"));
  EXPECT_EQ(flags->Get("model", "fallback"), "fallback");
}

TEST(FlagsTest, DoubleDashEndsTheFlags) {
  auto flags = Parse({"--name=x", "--", "--json", "-v"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_FALSE(flags->Has("json"));
  EXPECT_EQ(flags->positionals(), (std::vector<std::string>{"--json", "-v"}));
}

TEST(FlagsTest, RepeatedFlagsCollectCommaSeparatedValues) {
  auto flags = Parse({"--model", "a,b", "--model=c"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->GetList("model"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(flags->Get("model"), "c");
}

TEST(FlagsTest, SwitchAcceptsOnlyExplicitTrueOrFalse) {
  auto off = Parse({"--json=false"});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_TRUE(off->Has("json"));
  EXPECT_FALSE(off->Switch("json"));
  EXPECT_EQ(Parse({"--json=yes"}).status().message(),
            "--json takes no value (other than =true or =false)");
}

TEST(FlagsTest, ErrorsNameTheFlag) {
  EXPECT_EQ(Parse({"--nope"}).status().message(), "unknown flag '--nope'");
  EXPECT_EQ(Parse({"-n"}).status().message(),
            "unknown flag '-n' (flags start with --)");
  EXPECT_EQ(Parse({"--name"}).status().message(),
            "--name needs a value: --name NAME");
  EXPECT_EQ(Parse({"--name", "a", "--name", "b"}).status().message(),
            "--name given more than once");
  EXPECT_EQ(Parse({"--nope"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto dash = Parse({"-"});
  ASSERT_TRUE(dash.ok());
  EXPECT_EQ(dash->positionals(), std::vector<std::string>{"-"});
}

TEST(FlagsTest, HelpAlignsTheDescriptions) {
  EXPECT_EQ(FormatFlagHelp(std::span<const FlagSpec>(kSpecs, 3)),
            "  --name NAME     a name\n"
            "  --model ID ...  a model\n"
            "  --json          a switch\n");
}

TEST(FlagReaderTest, TypedValuesCheckTheirRange) {
  auto flags = Parse({"--count=7", "--name=1,28,28"});
  ASSERT_TRUE(flags.ok());
  FlagReader reader(*flags);
  EXPECT_EQ(reader.Int("count", 1, 10), 7);
  EXPECT_EQ(reader.Double("count", 0, 7.5), 7.0);
  EXPECT_EQ(reader.IntList("name", 1, 100), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(reader.Int("model", 1, 2), std::nullopt);  // absent: no error
  EXPECT_TRUE(reader.ok());
  EXPECT_EQ(reader.Int("count", 1, 5), std::nullopt);
  EXPECT_EQ(reader.status().message(),
            "--count must be an integer in [1, 5], not '7'");
  reader.Fail("a later error");
  EXPECT_EQ(reader.status().message(),
            "--count must be an integer in [1, 5], not '7'");
}

TEST(FlagReaderTest, RequiredFailsOnAMissingOrEmptyFlag) {
  auto flags = Parse({"--name="});
  ASSERT_TRUE(flags.ok());
  FlagReader reader(*flags);
  EXPECT_EQ(reader.Required("name"), "");
  EXPECT_EQ(reader.status().message(), "--name is required");
}

TEST(SplitListTest, SkipsEmptyItems) {
  EXPECT_EQ(SplitList("a,b,,c,"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(SplitList("").empty());
}

}  // namespace
}  // namespace lethe::base

#include "base/file.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace lethe::base {
namespace {

std::string Write(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(FileTest, ReadsWholeFilesAndChunks) {
  const std::string content("0123456789\0x", 12);
  const std::string path = Write("ten.bin", content);
  EXPECT_EQ(*ReadFile(path), content);
  std::vector<std::string> chunks;
  ASSERT_TRUE(ForEachChunk(path, 5, [&](absl::string_view c) {
                chunks.emplace_back(c);
                return true;
              }).ok());
  EXPECT_EQ(chunks, (std::vector<std::string>{"01234", "56789",
                                              std::string("\0x", 2)}));
  chunks.clear();
  ASSERT_TRUE(ForEachChunk(path, 5, [&](absl::string_view c) {
                chunks.emplace_back(c);
                return false;
              }).ok());
  EXPECT_EQ(chunks.size(), 1u);
  EXPECT_EQ(*ReadFile(Write("empty", "")), "");
}

TEST(FileTest, MissingFileIsNotFoundAndNamesIt) {
  const absl::Status st = ReadFile("/nonexistent/x.pem").status();
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(st.message(), "/nonexistent/x.pem")) << st;
  EXPECT_EQ(CheckReadable("/nonexistent/x.pem").code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(CheckReadable(Write("ok", "x")).ok());
}

}  // namespace
}  // namespace lethe::base

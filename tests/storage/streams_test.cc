// The byte streams that carry artifacts, uploads and training sets without
// holding them in memory (issues 17 and 19): the spool file (an unlinked
// temporary file, hashed or not) and a small head in memory before a
// stream's bytes.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "storage/hash.h"
#include "storage/model_store.h"
#include "storage/spool.h"

namespace lethe::storage {
namespace {

// Everything a stream yields from where it is, `step` bytes a read at most.
std::string Drain(ByteStream& s, size_t step) {
  std::string out, buf(step, '\0');
  for (;;) {
    absl::StatusOr<size_t> n = s.Read(buf.data(), buf.size());
    EXPECT_TRUE(n.ok()) << n.status();
    if (!n.ok() || *n == 0) return out;
    out.append(buf, 0, *n);
  }
}

TEST(SpoolFileTest, KeepsWhatIsAppendedOnDiskUnlinkedAndHashed) {
  const std::string dir = ::testing::TempDir() + "/lethe-spool-test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto file = SpoolFile::Create(dir);
  ASSERT_TRUE(file.ok()) << file.status();
  std::string all;
  for (int i = 0; i < 100; ++i) {
    const std::string piece(1000 + i, static_cast<char>('a' + i % 26));
    ASSERT_TRUE((*file)->Append(piece).ok());
    all += piece;
  }
  // Nothing to find in the directory, whatever happens to this process.
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  EXPECT_EQ((*file)->size(), static_cast<int64_t>(all.size()));
  EXPECT_EQ((*file)->Digest(), Sha256(all));
  ASSERT_TRUE((*file)->Rewind().ok());
  EXPECT_EQ(Drain(**file, 4096), all);
  ASSERT_TRUE((*file)->Rewind().ok());
  EXPECT_EQ(Drain(**file, 7), all);
  // A directory that is not there is a clear error.
  auto missing = SpoolFile::Create(dir + "/missing", /*hashed=*/false);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(missing.status().message().find("spool file"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(PrefixedStreamTest, YieldsTheHeadThenTheTailAcrossReadBoundaries) {
  const std::string tail_bytes(10000, 'x');
  StringByteStream tail(tail_bytes);
  PrefixedStream s("HEAD", &tail);
  EXPECT_EQ(s.size(), 4 + 10000);
  for (size_t step : {size_t{1}, size_t{3}, size_t{4}, size_t{4096}}) {
    ASSERT_TRUE(s.Rewind().ok());
    EXPECT_EQ(Drain(s, step), "HEAD" + tail_bytes) << step;
  }
  PrefixedStream alone("only", nullptr);
  EXPECT_EQ(alone.size(), 4);
  EXPECT_EQ(Drain(alone, 3), "only");
}

}  // namespace
}  // namespace lethe::storage

// The auditor's standard-tool path of docs/compliance.md, without a server:
// scripts/verify_inclusion.py agrees with cert/merkle.cc on every leaf of
// trees of 1..8 leaves and refuses a proof for another leaf, and
// scripts/audit-bundle.sh (openssl, python3, coreutils) accepts a bundle
// made by cert/ and refuses it with another key or one flipped proof bit.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "cert/bundle.h"
#include "cert/keys.h"
#include "tests/cert/cert_test_util.h"
#include "tests/support/process.h"

namespace lethe::testing {
namespace {

class AuditScriptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lethe-audit-XXXXXX";
    dir_ = mkdtemp(tmpl);
    Write("key.pub", key_.public_key().Pem());
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path;
  }

  // Exit code of the script (-1 if it did not exit normally).
  int Script(const std::string& script, std::vector<std::string> args) {
    SubprocessOptions o;
    o.program = std::string(LETHE_SOURCE_DIR "/scripts/") + script;
    o.args = std::move(args);
    o.stdout_path = dir_ + "/out.log";
    o.stderr_path = dir_ + "/out.log";
    auto p = Subprocess::Start(o);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return -1;
    auto st = (*p)->Wait(std::chrono::seconds(60));
    if (!st || !st->exited) return -1;
    return st->code;
  }

  std::string Log() const { return ReadFileOrEmpty(dir_ + "/out.log"); }

  std::string dir_;
  cert::PrivateKey key_ = cert::PrivateKey::Generate();
};

TEST_F(AuditScriptTest, PythonInclusionCheckAgreesWithMerkleCode) {
  for (uint64_t size = 1; size <= 8; ++size) {
    for (uint64_t index = 0; index < size; ++index) {
      cert::Bundle b = MakeBundle(SampleRecord(), key_, index, size);
      const std::string good = Write("good.json", b.Serialize());
      EXPECT_EQ(Script("verify_inclusion.py", {good}), 0)
          << index << "/" << size << "\n"
          << Log();
      if (size == 1) continue;
      // The same proof cannot place the certificate at another index.
      b.leaf_index = (index + 1) % size;
      const std::string moved = Write("moved.json", b.Serialize());
      EXPECT_EQ(Script("verify_inclusion.py", {moved}), 1)
          << index << "/" << size << "\n"
          << Log();
    }
  }
}

TEST_F(AuditScriptTest, AuditScriptAcceptsOnlyTheIntactBundleAndRightKey) {
  cert::Bundle b = MakeBundle(SampleRecord(), key_, 5, 11);
  const std::string good = Write("bundle.json", b.Serialize());
  const std::string pub = dir_ + "/key.pub";
  ASSERT_EQ(Script("audit-bundle.sh", {good, pub}), 0) << Log();
  EXPECT_NE(Log().find("ALL CHECKS PASSED"), std::string::npos) << Log();
  EXPECT_NE(Log().find("epsilon 1, delta 1e-05"), std::string::npos) << Log();

  const std::string other =
      Write("other.pub", cert::PrivateKey::Generate().public_key().Pem());
  EXPECT_EQ(Script("audit-bundle.sh", {good, other}), 1) << Log();

  for (size_t i = 0; i < b.inclusion_proof.size(); ++i) {
    cert::Bundle bad = b;
    bad.inclusion_proof[i][31] ^= 0x01;
    const std::string path = Write("bad.json", bad.Serialize());
    EXPECT_EQ(Script("audit-bundle.sh", {path, pub}), 1) << i << "\n" << Log();
  }
}

}  // namespace
}  // namespace lethe::testing

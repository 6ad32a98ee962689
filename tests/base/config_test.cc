#include "base/config.h"

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace lethe::base {
namespace {

const std::vector<OptionSpec> kSpecs = {{"listen", "d1", ""},
                                        {"database-url", "d2", ""},
                                        {"pool", "d3", ""},
                                        {"verbose", "false", ""}};

std::string WriteFile(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(ConfigTest, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  const std::string file =
      WriteFile("lethe.conf",
                "# comment\nlisten = file-listen\ndatabase-url = file-db\n"
                "pool = file-pool\n");
  setenv("LETHE_DATABASE_URL", "env-db", 1);
  setenv("LETHE_POOL", "env-pool", 1);
  auto cfg = Config::Parse(
      kSpecs, {"--config", file, "--pool=flag-pool", "--verbose", "serve"});
  unsetenv("LETHE_DATABASE_URL");
  unsetenv("LETHE_POOL");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->Get("listen"), "file-listen");
  EXPECT_EQ(cfg->Get("database-url"), "env-db");
  EXPECT_EQ(cfg->Get("pool"), "flag-pool");
  EXPECT_TRUE(cfg->GetBool("verbose"));
  EXPECT_EQ(cfg->positional(), std::vector<std::string>{"serve"});
  EXPECT_EQ(Config::EnvName("db-pool-size"), "LETHE_DB_POOL_SIZE");
}

TEST(ConfigTest, ConfigFileFromTheEnvironment) {
  const std::string file = WriteFile("env.conf", "pool = 9\n");
  setenv("LETHE_CONFIG", file.c_str(), 1);
  auto cfg = Config::Parse(kSpecs, {});
  unsetenv("LETHE_CONFIG");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->Get("pool"), "9");
  EXPECT_EQ(cfg->Get("listen"), "d1");
}

TEST(ConfigTest, LaterFlagWinsAndSwitchesTakeExplicitValues) {
  auto cfg = Config::Parse(
      kSpecs, {"--pool", "1", "--pool", "2", "--verbose=false", "-h"});
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->Get("pool"), "2");
  EXPECT_FALSE(cfg->GetBool("verbose"));
  EXPECT_TRUE(cfg->help_requested());
}

TEST(ConfigTest, ErrorsSayWhatWasWrong) {
  EXPECT_EQ(Config::Parse(kSpecs, {"--nope=1"}).status().message(),
            "unknown flag '--nope'; see --help");
  EXPECT_EQ(Config::Parse(kSpecs, {"--listen"}).status().message(),
            "--listen needs a value: --listen VALUE; see --help");
  const std::string bad = WriteFile("bad.conf", "listen = x\nnonsense\n");
  EXPECT_EQ(Config::Parse(kSpecs, {"--config", bad}).status().message(),
            bad + ":2: expected `name = value`");
  const std::string unknown = WriteFile("unknown.conf", "port = 1\n");
  EXPECT_EQ(Config::Parse(kSpecs, {"--config", unknown}).status().message(),
            unknown + ": unknown option 'port'");
  auto missing = Config::Parse(kSpecs, {"--config=/nonexistent/lethe.conf"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(missing.status().message(),
                               "cannot read config file /nonexistent/"));
}

TEST(ConfigTest, TypedGettersNameTheFlag) {
  auto cfg = Config::Parse(kSpecs, {"--pool=12", "--listen=0.25"});
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(*cfg->GetInt("pool"), 12);
  EXPECT_EQ(*cfg->GetInt64("pool"), 12);
  EXPECT_EQ(*cfg->GetDouble("listen"), 0.25);
  EXPECT_EQ(cfg->GetInt("listen").status().message(),
            "--listen must be an integer, got '0.25'");
  EXPECT_EQ(cfg->GetDouble("database-url").status().message(),
            "--database-url must be a number, got 'd2'");
}

TEST(ConfigTest, UsageListsEnvironmentAndDefaults) {
  EXPECT_EQ(Config::Usage({{"db-pool-size", "16", "connections"}}),
            "  --db-pool-size (LETHE_DB_POOL_SIZE, default: 16)\n"
            "      connections\n"
            "  --config FILE (LETHE_CONFIG)\n"
            "      file of `name = value` lines for any option above\n");
}

}  // namespace
}  // namespace lethe::base

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "core/config.hpp"
#include "core/error.hpp"
#include "test_util.hpp"

namespace hps {
namespace {

std::string config_error(const std::function<void()>& f) { return test::message_of<ConfigError>(f); }

TEST(Config, ParseErrorNamesSourceLineAndColumn) {
  auto msg = config_error([] { Config::from_string("[demo]\nsteps = \n", "demo.toml"); });
  EXPECT_EQ(msg.rfind("demo.toml:2:", 0), 0u) << msg;
}

TEST(Config, MissingFileIsNamed) {
  auto msg = config_error([] { Config::from_file("/nonexistent/x.toml"); });
  EXPECT_NE(msg.find("/nonexistent/x.toml"), std::string::npos) << msg;
}

TEST(Config, FileValuesAndTypedGetters) {
  const std::string path = ::testing::TempDir() + "hps_config_test.toml";
  std::ofstream(path) << "[demo]\nsteps = 7\nlr = 0.5\nname = \"x\"\nflag = true\n";
  auto c = Config::from_file(path);
  EXPECT_EQ(c.get_int("demo.steps", 0), 7);
  EXPECT_EQ(c.get_double("demo.lr", 0), 0.5);
  EXPECT_EQ(c.get_double("demo.steps", 0), 7.0);
  EXPECT_EQ(c.get_string("demo.name", ""), "x");
  EXPECT_TRUE(c.get_bool("demo.flag", false));
  EXPECT_EQ(c.get_int("demo.absent", 42), 42);
  auto msg = config_error([&] { c.get_int("demo.lr", 0); });
  EXPECT_NE(msg.find("'demo.lr' in " + path + " must be an integer, got float"), std::string::npos) << msg;
  std::remove(path.c_str());
}

TEST(Config, OverridesParseTomlValuesAndCreateTables) {
  Config c = Config::from_string("[demo]\nsteps = 7\n", "a.toml");
  c.set_override("demo.steps=100");
  c.set_override("loss.beta=0.25");
  c.set_override("loss.preference=hps_full");   // not TOML: taken as a string
  c.set_override("loss.robust=true");
  EXPECT_EQ(c.get_int("demo.steps", 0), 100);
  EXPECT_EQ(c.get_double("loss.beta", 0), 0.25);
  EXPECT_EQ(c.get_string("loss.preference", ""), "hps_full");
  EXPECT_TRUE(c.get_bool("loss.robust", false));
  EXPECT_NE(c.source().find("--demo.steps=100"), std::string::npos);
  EXPECT_NE(c.dump().find("steps = 100"), std::string::npos) << c.dump();
  EXPECT_THROW(c.set_override("novalue"), UsageError);
  EXPECT_THROW(c.set_override("demo..x=1"), UsageError);
  EXPECT_THROW(c.set_override("demo.steps.x=1"), UsageError);  // demo.steps is not a table
}

TEST(Config, CheckKnownRejectsTyposAndListsKnownKeys) {
  Config c = Config::from_string("[demo]\nsteps = 1\nstepz = 2\n", "t.toml");
  auto msg = config_error([&] { c.check_known("demo", {"steps", "lr"}); });
  EXPECT_NE(msg.find("unknown key 'demo.stepz' in t.toml (known: steps, lr)"), std::string::npos) << msg;
  EXPECT_NO_THROW(c.check_known("absent", {"x"}));
}

}  // namespace
}  // namespace hps

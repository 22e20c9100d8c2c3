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

TEST(Config, MergeTableEraseKeysAndFlattenComposeAView) {
  Config file = Config::from_string("[loss]\nbeta = 0.1\nties = \"exclude\"\n[methods.hps.loss]\nbeta = 0.5\n"
                                    "[methods.hps.loss.extra]\nx = [1, 2]\n[train]\nmethods = \"hps\"\nlr = 3\n", "p.toml");
  Config copy = file;  // a deep copy: the view below leaves `file` as it was
  Config v = Config::from_string("", "view");
  v.merge_table(file, "loss", "loss");
  v.merge_table(file, "methods.hps.loss", "loss");  // over the shared table, key by key
  v.merge_table(file, "absent", "gamma");           // nothing to copy: nothing happens
  v.merge_table(file, "train", "train");
  v.erase("train.methods");
  v.erase("no.such.key");
  EXPECT_EQ(v.get_double("loss.beta", 0), 0.5);
  EXPECT_EQ(v.get_string("loss.ties", ""), "exclude");
  EXPECT_FALSE(v.has("train.methods"));
  EXPECT_EQ(v.keys(""), (std::vector<std::string>{"loss", "train"}));
  EXPECT_EQ(file.keys("methods"), (std::vector<std::string>{"hps"}));
  EXPECT_TRUE(file.keys("absent").empty());
  // Values as TOML text, floats in their shortest form (0.1, not 0.10000000000000001), sorted by key.
  const std::map<std::string, std::string> flat{
      {"loss.beta", "0.5"}, {"loss.extra.x", "[ 1, 2 ]"}, {"loss.ties", "'exclude'"}, {"train.lr", "3"}};
  EXPECT_EQ(v.flatten(), flat);
  EXPECT_EQ(copy.flatten("loss"), (std::map<std::string, std::string>{{"beta", "0.1"}, {"ties", "'exclude'"}}));
  EXPECT_EQ(file.dump(), copy.dump());
  EXPECT_THROW(v.merge_table(file, "train.lr", "x"), ConfigError);  // a value, not a table
}

TEST(Config, PathsInAFileResolveAgainstItsFolderOverridesAgainstTheCurrentOne) {
  const std::string dir = ::testing::TempDir() + "hps_config_paths";
  std::ofstream(dir + ".toml") << "[a]\nrel = \"m/x\"\ndot = \"./y\"\nabs = \"/z\"\n";
  Config c = Config::from_file(dir + ".toml");
  const std::string folder = dir.substr(0, dir.rfind('/'));
  EXPECT_EQ(c.base_dir(), folder);
  EXPECT_EQ(c.get_path("a.rel", ""), folder + "/m/x");
  EXPECT_EQ(c.get_path("a.dot", ""), folder + "/y");
  EXPECT_EQ(c.get_path("a.abs", ""), "/z");
  EXPECT_EQ(c.get_path("a.none", "fallback"), "fallback");
  c.set_override("a.rel=typed/in/a/shell");
  EXPECT_EQ(c.get_path("a.rel", ""), "typed/in/a/shell");
  EXPECT_EQ(Config::from_string("[a]\nrel = \"m\"\n", "s").get_path("a.rel", ""), "m");  // no file: as is
  std::remove((dir + ".toml").c_str());
}

}  // namespace
}  // namespace hps

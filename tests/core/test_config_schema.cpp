// TableSchema: one declaration gives the known keys, the reader (given keys over the struct's defaults), the
// types and the rules.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "core/config_schema.hpp"
#include "core/enum_names.hpp"
#include "core/error.hpp"
#include "test_util.hpp"

namespace hps {
namespace {

using ::testing::HasSubstr;

enum class Color { red, blue };
constexpr EnumNames<Color, 2> kColors{{{"red", Color::red}, {"blue", Color::blue}}};
const char* to_string(Color c) { return enum_name(c, kColors).data(); }

struct Settings {
  int64_t count = 3;
  double rate = 0.5;
  bool on = false;
  std::string name = "x", file;
  Color color = Color::red;
  struct Inner {
    uint64_t seed = 1;
  } inner;
};

const TableSchema<Settings>& schema() {
  static const TableSchema<Settings> s =
      TableSchema<Settings>("t")
          .add("count", &Settings::count, positive<int64_t>())
          .add("rate", &Settings::rate, probability())
          .add("on", &Settings::on)
          .add("name", &Settings::name, required("a name"))
          .path("file", &Settings::file)
          .name("color", &Settings::color,
                [](const std::string& v, const std::string& key) {
                  return parse_enum(v, key, kColors);
                })
          .add("seed", [](Settings& s) -> uint64_t& { return s.inner.seed; });
  return s;
}

Settings read(const std::string& toml) {
  Settings s;
  schema().read(Config::from_string(toml, "s.toml"), s);
  return s;
}

std::string error_of(const std::string& toml) {
  return test::message_of<ConfigError>([&] { read(toml); });
}

TEST(ConfigSchema, KeysComeFromTheDeclaration) {
  EXPECT_EQ(schema().keys(), (std::vector<std::string_view>{"count", "rate", "on", "name", "file", "color", "seed"}));
}

// write() gives every key with its value as TOML that reads back to the same settings (--print-config).
TEST(ConfigSchema, WriteGivesEveryKeyAndReadsBack) {
  const Settings s = read("[t]\ncount = 7\nrate = 1e-07\non = true\nname = 'a \"quoted\" name'\ncolor = 'blue'\nseed = 9\n");
  std::ostringstream out;
  schema().write(s, out);
  EXPECT_EQ(out.str(), "[t]\ncount = 7\nrate = 1e-07\non = true\nname = 'a \"quoted\" name'\nfile = ''\n"
                       "color = 'blue'\nseed = 9\n");
  const Settings back = read(out.str());
  EXPECT_EQ(back.count, 7);
  EXPECT_EQ(back.rate, 1e-07);
  EXPECT_TRUE(back.on);
  EXPECT_EQ(back.name, s.name);
  EXPECT_EQ(back.color, Color::blue);
  EXPECT_EQ(back.inner.seed, 9u);
  EXPECT_EQ(toml_double(0.5), "0.5");
  EXPECT_EQ(toml_double(2.0), "2.0");  // a float stays a float
}

TEST(ConfigSchema, GivenKeysOverDefaults) {
  const Settings d = read("");
  EXPECT_EQ(d.count, 3);
  EXPECT_EQ(d.name, "x");
  const Settings s = read("[t]\ncount = 7\nrate = 0.25\non = true\nname = \"y\"\ncolor = \"blue\"\nseed = 9\n");
  EXPECT_EQ(s.count, 7);
  EXPECT_EQ(s.rate, 0.25);
  EXPECT_TRUE(s.on);
  EXPECT_EQ(s.name, "y");
  EXPECT_EQ(s.color, Color::blue);
  EXPECT_EQ(s.inner.seed, 9u);
}

TEST(ConfigSchema, PathsResolveAgainstTheFilesFolder) {
  test::TempDir dir;
  const std::string path = dir.str("c.toml");
  io::write_file_atomic(path, [](std::ostream& o) { o << "[t]\nfile = \"data/a.jsonl\"\n"; });
  Settings s;
  schema().read(Config::from_file(path), s);
  EXPECT_EQ(s.file, dir.str("data/a.jsonl"));
}

TEST(ConfigSchema, UnknownKeysWrongTypesAndBrokenRulesAreNamed) {
  EXPECT_THAT(error_of("[t]\ncolour = \"red\"\n"), HasSubstr("colour"));
  EXPECT_THAT(error_of("[t]\ncount = \"many\"\n"), HasSubstr("t.count"));
  EXPECT_THAT(error_of("[t]\ncount = 0\n"), HasSubstr("t.count must be > 0, found 0"));
  EXPECT_THAT(error_of("[t]\nrate = 1.5\n"), HasSubstr("t.rate must be a probability in [0, 1], found 1.5"));
  EXPECT_THAT(error_of("[t]\nname = \"\"\n"), HasSubstr("t.name is required (a name)"));
  EXPECT_THAT(error_of("[t]\ncolor = \"green\"\n"), HasSubstr("'t.color': unknown value 'green' (expected one of: red, blue)"));
}

TEST(ConfigSchema, ReadsUnderAnotherTableName) {
  Settings s;
  schema().read(Config::from_string("[methods.m.t]\ncount = 5\n", "s.toml"), "methods.m.t", s);
  EXPECT_EQ(s.count, 5);
}

}  // namespace
}  // namespace hps

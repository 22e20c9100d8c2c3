#include <gtest/gtest.h>

#include "core/error.hpp"

namespace hps {
namespace {

TEST(Error, CarriesKindMessageAndContext) {
  try {
    try {
      throw InputError("data.jsonl:3: field 'reward': expected a number, got string");
    } catch (Error& e) {
      e.add_context("while loading data.jsonl");
      throw;
    }
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_EQ(e.message(), "data.jsonl:3: field 'reward': expected a number, got string");
    ASSERT_EQ(e.context().size(), 1u);
    EXPECT_EQ(std::string(e.what()),
              "data.jsonl:3: field 'reward': expected a number, got string\n  while loading data.jsonl");
    EXPECT_STREQ(to_string(e.kind()), "input error");
  }
}

TEST(Error, SubclassesMapToKinds) {
  EXPECT_EQ(ConfigError("x").kind(), ErrorKind::config);
  EXPECT_EQ(UsageError("x").kind(), ErrorKind::usage);
  EXPECT_EQ(NumericError("x").kind(), ErrorKind::numeric);
}

}  // namespace
}  // namespace hps

// The helpers of test_util.hpp that decide a test's outcome: a missing ../shared file skips locally and
// fails under CI=true.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "test_util.hpp"

namespace hps {
namespace {

TEST(SharedFile, MissingFileSkipsUnlessCiIsTrue) {
  using test::MissingShared;
  EXPECT_EQ(test::on_missing_shared(nullptr), MissingShared::skip);
  EXPECT_EQ(test::on_missing_shared(""), MissingShared::skip);
  EXPECT_EQ(test::on_missing_shared("false"), MissingShared::skip);
  EXPECT_EQ(test::on_missing_shared("0"), MissingShared::skip);
  EXPECT_EQ(test::on_missing_shared("true"), MissingShared::fail);
  EXPECT_EQ(test::on_missing_shared("1"), MissingShared::fail);
}

void require_missing_shared_file() { HPS_SHARED_FILE_OR_SKIP("/nonexistent/hps-shared-probe.jsonl.gz"); }

TEST(SharedFile, MissingFileUnderCiTrueIsAFailureNotASkip) {
  const char* old = std::getenv("CI");
  const std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
  ::setenv("CI", "true", 1);
  EXPECT_FATAL_FAILURE(require_missing_shared_file(), "/nonexistent/hps-shared-probe.jsonl.gz (../shared absent) and CI=true");
  if (saved) ::setenv("CI", saved->c_str(), 1); else ::unsetenv("CI");
}

}  // namespace
}  // namespace hps

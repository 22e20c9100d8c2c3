// Files that are fully written or not there, JSON files with positioned errors, and the POSIX helpers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "test_util.hpp"

namespace hps::io {
namespace {

using ::testing::HasSubstr;
using test::message_of;

TEST(AtomicFile, AFailedWriteLeavesTheOldFileAndNoTemporary) {
  test::TempDir d;
  const std::string p = d.str("f.txt");
  write_file_atomic(p, [](std::ostream& o) { o << "old"; });
  EXPECT_THROW(write_file_atomic(p, [](std::ostream& o) {
                 o << "half of the new cont";
                 throw std::runtime_error("disk full");
               }),
               std::runtime_error);
  EXPECT_EQ(read_file(p), "old");
  EXPECT_EQ(list_dir(d.str()), std::vector<std::string>{"f.txt"}) << "the temporary file was removed";
  write_file_atomic(p, [](std::ostream& o) { o << "new"; });
  EXPECT_EQ(read_file(p), "new");
}

TEST(AtomicFile, JsonErrorsNameLineAndColumn) {
  test::TempDir d;
  std::ofstream(d.str("bad.json")) << "{\n  \"a\": 1,\n  \"b\": ]\n}\n";
  const auto msg = message_of<InputError>([&] { read_json_file(d.str("bad.json")); });
  EXPECT_THAT(msg, HasSubstr("bad.json"));
  EXPECT_THAT(msg, HasSubstr("line 3"));
  EXPECT_THAT(message_of<InputError>([&] { read_file(d.str("absent")); }), HasSubstr("absent"));
  write_json_file(d.str("ok.json"), {{"x", {1, 2}}});
  EXPECT_EQ(read_json_file(d.str("ok.json"))["x"][1], 2);
}

TEST(FileHelpers, MakeListCopyRemove) {
  test::TempDir d;
  make_dirs(d.str("a/b/c"));
  make_dirs(d.str("a/b/c"));  // idempotent
  EXPECT_TRUE(dir_exists(d.str("a/b/c")));
  EXPECT_FALSE(file_exists(d.str("a/b/c")));  // a folder is not a regular file
  std::ofstream(d.str("a/z.txt")) << "z";
  std::ofstream(d.str("a/y.txt")) << "y";
  EXPECT_EQ(list_dir(d.str("a")), (std::vector<std::string>{"b", "y.txt", "z.txt"}));
  copy_file(d.str("a/z.txt"), d.str("a/b/z2.txt"));
  EXPECT_EQ(read_file(d.str("a/b/z2.txt")), "z");
  remove_tree(d.str("a"));
  EXPECT_FALSE(dir_exists(d.str("a")));
  remove_tree(d.str("a"));  // silent when absent
  std::ofstream(d.str("file")) << "x";
  EXPECT_THAT(message_of<InputError>([&] { make_dirs(d.str("file/sub")); }), HasSubstr("file/sub"));
}

}  // namespace
}  // namespace hps::io

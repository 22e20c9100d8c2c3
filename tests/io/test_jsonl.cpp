// JSONL reading (plain and gzip, line numbers in every error, blank lines, a truncated gzip stream) and the
// crash-safe appender that `hps generate` and `hps score` resume from.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"
#include "test_util.hpp"

namespace hps::io {
namespace {

using ::testing::HasSubstr;
using test::message_of;

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

void write_gzip(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  gzclose(f);
}

std::vector<std::pair<int64_t, nlohmann::json>> read_all(const std::string& path) {
  std::vector<std::pair<int64_t, nlohmann::json>> out;
  for_each_jsonl(path, [&](int64_t line, const nlohmann::json& v) { out.push_back({line, v}); });
  return out;
}

TEST(Jsonl, RecordsWithOneBasedLinesSkippingBlankOnesPlainAndGzip) {
  test::TempDir d;
  const std::string text = "{\"a\": 1}\n\n  \t\n[2, 3]\n{\"b\": \"x\"}";  // no final newline
  write_text(d.str("x.jsonl"), text);
  write_gzip(d.str("x.jsonl.gz"), text);
  for (const auto& p : {d.str("x.jsonl"), d.str("x.jsonl.gz")}) {
    const auto rows = read_all(p);
    ASSERT_EQ(rows.size(), 3u) << p;
    EXPECT_EQ(rows[0].first, 1);
    EXPECT_EQ(rows[1].first, 4);
    EXPECT_EQ(rows[2].first, 5);
    EXPECT_EQ(rows[2].second["b"], "x");
    EXPECT_EQ(first_jsonl_record(p)->at("a"), 1);
  }
  write_text(d.str("empty.jsonl"), "\n\n");
  EXPECT_FALSE(first_jsonl_record(d.str("empty.jsonl")).has_value());
}

TEST(Jsonl, DeepNestingAndDuplicateKeysAreNamedErrors) {
  // 100 000 nested brackets used to crash the error path (a recursive dump or copy of the value).
  test::TempDir d;
  write_text(d.str("deep.jsonl"), "{}\n" + std::string(100000, '[') + "\n");
  EXPECT_THAT(message_of<InputError>([&] { read_all(d.str("deep.jsonl")); }),
              HasSubstr("deep.jsonl:2: JSON nested deeper than 512 levels"));
  write_text(d.str("config.json"), "{\"a\": " + std::string(600, '[') + std::string(600, ']') + "}");
  EXPECT_THAT(message_of<InputError>([&] { io::read_json_file(d.str("config.json")); }),
              HasSubstr("config.json: JSON nested deeper than 512 levels"));
  // A key twice in one object of a record (nested too) is an error; the same key in two objects is fine.
  write_text(d.str("dup.jsonl"), "{\"a\": {\"x\": 1, \"y\": {\"x\": 2}}}\n{\"prompt\": \"p\", \"r\": {\"k\": 1, \"k\": 2}}\n");
  EXPECT_THAT(message_of<InputError>([&] { read_all(d.str("dup.jsonl")); }),
              HasSubstr("dup.jsonl:2: key \"k\" appears twice in one object"));
  // 512 levels are fine; a syntax error names line and column.
  write_text(d.str("ok.json"), std::string(512, '[') + std::string(512, ']'));
  EXPECT_TRUE(io::read_json_file(d.str("ok.json")).is_array());
  write_text(d.str("bad.json"), "{\n  \"a\": 1,\n  \"b\": }\n");
  EXPECT_THAT(message_of<InputError>([&] { io::read_json_file(d.str("bad.json")); }),
              HasSubstr("bad.json: invalid JSON at line 3, column 8"));
}

TEST(Jsonl, ErrorsNameTheFileAndLine) {
  test::TempDir d;
  write_text(d.str("bad.jsonl"), "{\"a\": 1}\n{\"a\": }\n");
  EXPECT_THAT(message_of<InputError>([&] { read_all(d.str("bad.jsonl")); }), HasSubstr("bad.jsonl:2: invalid JSON"));
  write_text(d.str("big.jsonl"), "{\"a\": 1e999}\n");
  EXPECT_THAT(message_of<InputError>([&] { read_all(d.str("big.jsonl")); }), HasSubstr("big.jsonl:1: invalid JSON"));
  // An error thrown by the callback gets the position as context.
  write_text(d.str("ok.jsonl"), "{}\n{}\n{}\n");
  const auto msg = message_of<InputError>([&] {
    for_each_jsonl(d.str("ok.jsonl"), [](int64_t line, const nlohmann::json&) {
      if (line == 3) throw InputError("field 'x' is missing");
    });
  });
  EXPECT_THAT(msg, HasSubstr("field 'x' is missing"));
  EXPECT_THAT(msg, HasSubstr("ok.jsonl:3"));
  EXPECT_THAT(message_of<InputError>([&] { read_all(d.str("absent.jsonl")); }), HasSubstr("cannot open"));
}

TEST(Jsonl, TruncatedGzipStreamIsAnErrorAfterTheLastCompleteLine) {
  test::TempDir d;
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "{\"i\": " + std::to_string(i) + ", \"pad\": \"" + std::string(40, 'x') + "\"}\n";
  write_gzip(d.str("full.gz"), text);
  const std::string bytes = read_file(d.str("full.gz"));
  write_text(d.str("cut.gz"), bytes.substr(0, bytes.size() / 2));
  EXPECT_THAT(message_of<InputError>([&] { read_all(d.str("cut.gz")); }), HasSubstr("truncated gzip stream after line"));
}

// Bytes that zlib and nlohmann drop without a word: each is an error naming file and position.
TEST(Jsonl, NulBytesAndNonGzipBytesAfterAGzipStreamAreErrorsConcatenatedMembersAreRead) {
  test::TempDir d;
  write_text(d.str("nul.jsonl"), std::string("{\"a\": 1}\n{\"a\": 2}\0{\"a\": 3}\n", 27));
  EXPECT_THAT(message_of<InputError>([&] { read_all(d.str("nul.jsonl")); }),
              HasSubstr("nul.jsonl:2: NUL byte at column 9"));
  write_gzip(d.str("a.gz"), "{\"a\": 1}\n");
  write_gzip(d.str("b.gz"), "{\"a\": 2}\n{\"a\": 3}\n");
  const std::string a = read_file(d.str("a.gz")), b = read_file(d.str("b.gz"));
  write_text(d.str("cat.gz"), a + b);  // `cat a.gz b.gz`: one stream of three records
  const auto rows = read_all(d.str("cat.gz"));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].second["a"], 3);
  EXPECT_EQ(rows[2].first, 3);
  write_text(d.str("tail.gz"), a + "{\"a\": 9}\n");  // plain text appended to a gzip file
  EXPECT_THAT(message_of<InputError>([&] { read_all(d.str("tail.gz")); }),
              HasSubstr("tail.gz: " + std::to_string(a.size()) + ": bytes after the end of the gzip stream that are not gzip"));
  // Gzip is recognized by its bytes, not its name.
  write_text(d.str("named.jsonl"), b);
  EXPECT_EQ(read_all(d.str("named.jsonl")).size(), 2u);
}

TEST(JsonlAppender, KeepsCompleteLinesCutsAPartialOneAndAppends) {
  test::TempDir d;
  const std::string p = d.str("out.jsonl");
  std::ostringstream log;
  {
    JsonlAppender fresh(p, log);
    EXPECT_EQ(fresh.lines(), 0);
    fresh.append("{\"i\": 0}\n{\"i\": 1}\n");
  }
  write_text(p, read_file(p) + "{\"i\": 2, \"trunc");  // a crash mid-write
  {
    JsonlAppender again(p, log);
    EXPECT_EQ(again.lines(), 2);
    EXPECT_THAT(log.str(), HasSubstr("removing a partial last line (15 bytes)"));
    again.append("{\"i\": 2}\n");
    EXPECT_THROW(again.append("{\"i\": 3}"), InternalError);  // whole lines only
  }
  EXPECT_EQ(read_file(p), "{\"i\": 0}\n{\"i\": 1}\n{\"i\": 2}\n");
  JsonlAppender third(p, log);
  EXPECT_EQ(third.lines(), 3);
}

}  // namespace
}  // namespace hps::io

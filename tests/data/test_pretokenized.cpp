// Pre-tokenized JSONL records: reading (plain and gzip), every bad-record rule, padding, and scoring them
// against transformers (tests/fixtures/models/pretokenized_expected.json).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "data/pretokenized.hpp"
#include "io/atomic_file.hpp"
#include "model/load.hpp"
#include "model/score_records.hpp"
#include "model/model_helpers.hpp"

namespace hps::data {
namespace {

using test::message_of;
using test::TempDir;

std::string read_error(const std::string& content) {
  TempDir dir;
  std::ofstream(dir.str("d.jsonl")) << content;
  return message_of<InputError>([&] { read_pretokenized(dir.str("d.jsonl"), 100); });
}

TEST(Pretokenized, ReadsFixtureAndGzipCopy) {
  const std::string path = test::fixtures_dir() + "/models/pretokenized.jsonl";
  auto recs = read_pretokenized(path, 128);
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(recs[1].line, 2);
  EXPECT_EQ(recs[1].responses.size(), 3u);
  TempDir dir;
  const std::string bytes = io::read_file(path);
  gzFile gz = gzopen(dir.str("d.jsonl.gz").c_str(), "wb");
  gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(gz);
  auto again = read_pretokenized(dir.str("d.jsonl.gz"), 128);
  ASSERT_EQ(again.size(), 4u);
  EXPECT_EQ(again[3].prompt, recs[3].prompt);
  // Truncated gzip: an error naming the file, never a silently shorter dataset.
  const std::string gzbytes = io::read_file(dir.str("d.jsonl.gz"));
  std::ofstream(dir.str("t.jsonl.gz"), std::ios::binary).write(gzbytes.data(), static_cast<std::streamsize>(gzbytes.size() - 12));
  EXPECT_THAT(message_of<InputError>([&] { read_pretokenized(dir.str("t.jsonl.gz"), 128); }),
              ::testing::HasSubstr("t.jsonl.gz"));
}

TEST(Pretokenized, EveryBadRecordNamesLineFieldAndRule) {
  EXPECT_THAT(read_error("{\"prompt_ids\": [1], \"response_ids\": [[2]]}\n{oops\n"),
              ::testing::HasSubstr("d.jsonl:2: invalid JSON"));
  EXPECT_THAT(read_error("{\"response_ids\": [[2]]}"), ::testing::HasSubstr("missing field 'prompt_ids'"));
  EXPECT_THAT(read_error("{\"prompt_ids\": [], \"response_ids\": [[2]]}"),
              ::testing::HasSubstr("'prompt_ids': must not be empty"));
  EXPECT_THAT(read_error("{\"prompt_ids\": [1], \"response_ids\": [[2], []]}"),
              ::testing::HasSubstr("'response_ids[1]': must not be empty"));
  EXPECT_THAT(read_error("{\"prompt_ids\": [1, \"a\"], \"response_ids\": [[2]]}"),
              ::testing::HasSubstr("'prompt_ids'[1]: expected an integer token id"));
  EXPECT_THAT(read_error("{\"prompt_ids\": [1], \"response_ids\": [[100]]}"),
              ::testing::HasSubstr("token id 100 outside the model's vocabulary [0, 100)"));
  EXPECT_THAT(read_error("\n\n{\"prompt_ids\": [1], \"response_ids\": []}"),
              ::testing::AllOf(::testing::HasSubstr("d.jsonl:3"), ::testing::HasSubstr("non-empty array")));
  EXPECT_THAT(read_error("[1, 2]"), ::testing::HasSubstr("expected a JSON object"));
}

TEST(Pretokenized, PadSequencesMarksRealAndResponseTokens) {
  std::vector<int64_t> p1{5, 6}, r1{7}, p2{8}, r2{9, 10, 11};
  auto b = pad_sequences({{&p1, &r1}, {&p2, &r2}}, 0);
  EXPECT_TRUE(at::equal(b.ids, at::tensor({5, 6, 7, 0, 8, 9, 10, 11}, at::kLong).view({2, 4})));
  EXPECT_TRUE(at::equal(b.mask, at::tensor({1, 1, 1, 0, 1, 1, 1, 1}, at::kLong).view({2, 4})));
  EXPECT_TRUE(at::equal(b.response_mask, at::tensor({0, 0, 1, 0, 0, 1, 1, 1}, at::kLong).view({2, 4})));
}

TEST(ScoreRecords, MatchesTransformersForEveryBatchSize) {
  const auto expected = io::read_json_file(test::fixtures_dir() + "/models/pretokenized_expected.json");
  const auto model = model::load_model(test::model_dir(expected["model"].get<std::string>()));
  const auto recs = read_pretokenized(test::fixtures_dir() + "/models/pretokenized.jsonl", 128);
  for (int64_t batch : {1, 3, 100}) {
    const auto got = model::score_records(model, recs, batch);
    ASSERT_EQ(got.size(), recs.size());
    for (size_t r = 0; r < recs.size(); ++r) {
      const auto& e = expected["records"][r];
      ASSERT_EQ(got[r].logp.size(), e["logp"].size());
      for (size_t k = 0; k < got[r].logp.size(); ++k) {
        EXPECT_NEAR(got[r].logp[k], e["logp"][k].get<double>(), 1e-4) << "record " << r << " response " << k;
        EXPECT_EQ(got[r].tokens[k], e["tokens"][k].get<int64_t>());
      }
    }
  }
}

}  // namespace
}  // namespace hps::data

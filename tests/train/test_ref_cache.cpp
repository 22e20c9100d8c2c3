// The reference log-prob cache (src/train/ref_cache.*) on its own: built once and read back on a hit, rebuilt
// when its key changes, a clear error for a response it does not hold or for a damaged file, and its values
// are the records' scores exactly as score_records computes them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "data/pretokenized.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"
#include "model/load.hpp"
#include "model/score_records.hpp"
#include "test_util.hpp"
#include "train/ref_cache.hpp"

namespace hps::train {
namespace {

using test::message_of;
using ::testing::HasSubstr;

// Source lines and scores of three records with ragged K (2, 3, 1 responses); `shift` makes other values.
const std::vector<int64_t> kLines{3, 7, 12};
std::vector<model::RecordLogprobs> scores(double shift = 0.0) {
  // -0.1 and -1e-9 have no float32 equal: the cache must store float64.
  return {{{-1.5 + shift, -0.1 + shift}, {4, 2}}, {{-0.125 + shift, -3.0, -1e-9}, {1, 3, 9}}, {{-4.0 + shift}, {5}}};
}

// load_or_build's `compute`, counting its calls.
struct Compute {
  std::vector<model::RecordLogprobs> out;
  int calls = 0;
  std::function<std::vector<model::RecordLogprobs>()> fn() {
    return [this] {
      ++calls;
      return out;
    };
  }
};

void expect_values(const RefCache& c, const std::vector<model::RecordLogprobs>& want) {
  ASSERT_EQ(c.records(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    for (size_t k = 0; k < want[i].logp.size(); ++k)
      EXPECT_EQ(c.at(kLines[i], static_cast<int64_t>(k)), want[i].logp[k]) << "line " << kLines[i] << " slot " << k;
}

TEST(FileFingerprint, IsTheSizeAndCrc32OfTheBytes) {
  test::TempDir dir;
  const std::string f = dir.str("f.bin");
  std::ofstream(f) << "123456789";
  EXPECT_EQ(io::file_fingerprint(f), "9:cbf43926");  // CRC-32's check value
  std::ofstream(f) << "123456780";
  EXPECT_EQ(io::file_fingerprint(f), "9:b2288182") << "one byte changed";
  std::ofstream(f).close();
  EXPECT_EQ(io::file_fingerprint(f), "0:00000000");
  EXPECT_THAT(message_of<InputError>([&] { io::file_fingerprint(dir.str("none")); }), HasSubstr("cannot read"));
}

TEST(RefCache, IsBuiltOnceThenReadBackOnAHit) {
  test::TempDir dir;
  const std::string path = dir.str("ref_logps.safetensors");
  Compute c{scores()};
  std::ostringstream log;
  const RefCache built = RefCache::load_or_build(path, "key-a", kLines, c.fn(), log);
  EXPECT_THAT(log.str(), HasSubstr("reference log-prob cache: building " + path));
  EXPECT_EQ(c.calls, 1);
  EXPECT_FALSE(built.hit());
  EXPECT_TRUE(io::file_exists(path));
  expect_values(built, scores());

  std::ostringstream again;
  const RefCache read = RefCache::load_or_build(path, "key-a", kLines, c.fn(), again);
  EXPECT_EQ(c.calls, 1) << "a hit computes nothing";
  EXPECT_TRUE(read.hit());
  EXPECT_THAT(again.str(), HasSubstr("reference log-prob cache: hit (3 records) " + path));
  expect_values(read, scores());  // bit for bit: stored as float64
}

TEST(RefCache, AChangedKeyIsStaleAndRebuilt) {
  test::TempDir dir;
  const std::string path = dir.str("ref_logps.safetensors");
  Compute old_values{scores()}, new_values{scores(0.5)};
  std::ostringstream log;
  RefCache::load_or_build(path, "key-a", kLines, old_values.fn(), log);
  std::ostringstream stale;
  const RefCache rebuilt = RefCache::load_or_build(path, "key-b", kLines, new_values.fn(), stale);
  EXPECT_THAT(stale.str(), HasSubstr("reference log-prob cache: stale"));
  EXPECT_EQ(new_values.calls, 1);
  EXPECT_FALSE(rebuilt.hit());
  expect_values(rebuilt, scores(0.5));
  // The file now holds the new key and values; the old key is stale in turn.
  std::ostringstream hit;
  const RefCache read = RefCache::load_or_build(path, "key-b", kLines, new_values.fn(), hit);
  EXPECT_TRUE(read.hit());
  EXPECT_EQ(new_values.calls, 1);
  expect_values(read, scores(0.5));
  std::ostringstream back;
  RefCache::load_or_build(path, "key-a", kLines, old_values.fn(), back);
  EXPECT_THAT(back.str(), HasSubstr("stale"));
  EXPECT_EQ(old_values.calls, 2);
}

TEST(RefCache, AResponseItDoesNotHoldIsAClearError) {
  test::TempDir dir;
  std::ostringstream log;
  Compute c{scores()};
  const RefCache cache = RefCache::load_or_build(dir.str("c.safetensors"), "k", kLines, c.fn(), log);
  EXPECT_THAT(message_of<InputError>([&] { cache.at(99, 0); }),
              HasSubstr("reference log-prob cache has no response 0 for line 99"));
  EXPECT_THAT(message_of<InputError>([&] { cache.at(12, 1); }), HasSubstr("no response 1 for line 12"));
  EXPECT_THAT(message_of<InputError>([&] { cache.at(3, -1); }), HasSubstr("no response -1 for line 3"));
  // compute() must score every record it is given.
  Compute short_of_one{{scores()[0], scores()[1]}};
  EXPECT_THAT(message_of<InternalError>([&] {
                RefCache::load_or_build(dir.str("d.safetensors"), "k", kLines, short_of_one.fn(), log);
              }),
              HasSubstr("one score per record expected"));
}

TEST(RefCache, ADamagedFileIsAClearErrorNamingIt) {
  // The cache is written atomically (temp file + rename), so a damaged one is not an interrupted write of
  // ours: it is an error naming the file, never values read from it, and nothing is recomputed over it.
  test::TempDir dir;
  const std::string path = dir.str("ref_logps.safetensors");
  Compute c{scores()};
  std::ostringstream log;
  RefCache::load_or_build(path, "key", kLines, c.fn(), log);
  const std::string bytes = io::read_file(path);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() - 8);  // cut short
  EXPECT_THAT(message_of<InputError>([&] { RefCache::load_or_build(path, "key", kLines, c.fn(), log); }),
              ::testing::AllOf(HasSubstr(path), HasSubstr("delete it to rebuild")));
  // The right key over tensors that do not fit together: offsets past the end of the values.
  io::save_safetensors(path,
                       {{"lines", at::tensor(std::vector<int64_t>{3, 7}, at::kLong)},
                        {"offsets", at::tensor(std::vector<int64_t>{0, 2, 5}, at::kLong)},
                        {"logp", at::tensor(std::vector<double>{-1, -2, -3}, at::kDouble)}},
                       {{"key", "key"}});
  EXPECT_THAT(message_of<InputError>([&] { RefCache::load_or_build(path, "key", kLines, c.fn(), log); }),
              ::testing::AllOf(HasSubstr(path), HasSubstr("offsets"), HasSubstr("delete it to rebuild")));
  // A tensor of the wrong type.
  io::save_safetensors(path,
                       {{"lines", at::tensor(std::vector<int64_t>{3}, at::kLong)},
                        {"offsets", at::tensor(std::vector<int64_t>{0, 1}, at::kLong)},
                        {"logp", at::tensor(std::vector<float>{-1}, at::kFloat)}},
                       {{"key", "key"}});
  EXPECT_THAT(message_of<InputError>([&] { RefCache::load_or_build(path, "key", kLines, c.fn(), log); }),
              ::testing::AllOf(HasSubstr(path), HasSubstr("logp")));
  EXPECT_EQ(c.calls, 1) << "nothing recomputed over a damaged file";
}

TEST(RefCache, ValuesEqualScoringTheRecordsDirectly) {
  // The committed tiny Llama and its pre-tokenized records (transformers' values in pretokenized_expected).
  const auto expected = io::read_json_file(test::fixtures_dir() + "/models/pretokenized_expected.json");
  const auto llama = model::load_model(test::fixtures_dir() + "/models/" + expected["model"].get<std::string>());
  const auto recs = data::read_pretokenized(test::fixtures_dir() + "/models/pretokenized.jsonl", 128);
  std::vector<int64_t> lines;
  for (const auto& r : recs) lines.push_back(r.line);
  const auto direct = model::score_records(llama, recs, 3);
  test::TempDir dir;
  const std::string path = dir.str("ref_logps.safetensors");
  std::ostringstream log;
  RefCache::load_or_build(path, "key", lines, [&] { return model::score_records(llama, recs, 3); }, log);
  const auto nothing = [] { return std::vector<model::RecordLogprobs>(); };  // a hit computes nothing
  const RefCache cache = RefCache::load_or_build(path, "key", lines, nothing, log);
  ASSERT_TRUE(cache.hit());
  ASSERT_EQ(cache.records(), recs.size());
  for (size_t r = 0; r < recs.size(); ++r)
    for (size_t k = 0; k < recs[r].responses.size(); ++k) {
      const double cached = cache.at(recs[r].line, static_cast<int64_t>(k));
      EXPECT_EQ(cached, direct[r].logp[k]) << "line " << recs[r].line << " response " << k;
      EXPECT_NEAR(cached, expected["records"][r]["logp"][k].get<double>(), 1e-4) << "transformers' value";
    }
}

}  // namespace
}  // namespace hps::train

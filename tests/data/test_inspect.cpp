// `hps data inspect`'s report: counts, the K distribution, reward statistics, all-tied records, token-length
// percentiles through the one prompt path, notes and problems with their lines.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "data/batching.hpp"
#include "data/inspect.hpp"
#include "test_util.hpp"

namespace hps::data {
namespace {

using ::testing::HasSubstr;

TEST(Inspect, CountsRewardsTiesLengthsAndProblems) {
  test::TempDir d;
  const std::string path = d.str("r.jsonl");
  std::ofstream(path) << R"({"prompt": "Hi?", "responses": ["a", "bb"], "rewards": [1.0, -1.0]})" "\n"
                      << R"({"prompt": "Tie?", "responses": ["x", "y", "z"], "rewards": [0.5, 0.5, 0.5]})" "\n"
                      << R"({"prompt": "Bad", "responses": ["only"], "rewards": [1, 2]})" "\n"
                      << R"({"prompt": [{"role": "user", "content": "Q"}], "responses": ["p", "q", "r"], "rewards": [3, 2, 2]})" "\n";
  DatasetOptions opt;
  opt.on_bad_record = OnBadRecord::skip;
  const Dataset ds = read_dataset(path, opt);
  const auto tok = text::Tokenizer::from_dir(test::fixtures_dir() + "/tokenizers/qwen2");
  const text::ChatTemplate chat = text::choose_chat_template(tok.config(), "");
  const DatasetReport r = inspect_dataset(ds, &tok, chat);
  EXPECT_EQ(r.records, 3);
  EXPECT_EQ(r.lines, 4);
  EXPECT_EQ(r.k_counts, (std::map<int64_t, int64_t>{{2, 1}, {3, 2}}));
  EXPECT_EQ(r.with_rewards, 3);
  EXPECT_EQ(r.all_tied, 1);  // the middle record; [3, 2, 2] has a preference
  EXPECT_DOUBLE_EQ(r.reward_min, -1.0);
  EXPECT_DOUBLE_EQ(r.reward_max, 3.0);
  EXPECT_DOUBLE_EQ(r.reward_mean, (1.0 - 1.0 + 1.5 + 7.0) / 8.0);
  ASSERT_EQ(r.skipped.size(), 1u);
  EXPECT_EQ(r.skipped[0].line, 3);
  // Prompt lengths are the ids every stage uses (data::prompt_ids).
  std::vector<int64_t> plen;
  for (const auto& rec : ds.records) plen.push_back(static_cast<int64_t>(prompt_ids(rec, tok, chat).size()));
  ASSERT_TRUE(r.prompt_tokens.has_value());
  EXPECT_EQ(r.prompt_tokens->max, *std::max_element(plen.begin(), plen.end()));
  std::ostringstream out;
  print_report(r, out);
  EXPECT_THAT(out.str(), HasSubstr("records         3 of 4 lines (1 skipped)"));
  EXPECT_THAT(out.str(), HasSubstr("responses (K)   2 × 1, 3 × 2"));
  EXPECT_THAT(out.str(), HasSubstr("all tied        1 records give every response the same reward"));
  EXPECT_THAT(out.str(), HasSubstr("problem         line 3: "));
  // The renderer, its end of turn, and the first prompt as the model sees it (to check the template).
  EXPECT_THAT(out.str(), HasSubstr("chat format     jinja (the tokenizer's own chat_template), end of turn \"<|im_end|>\""));
  EXPECT_THAT(out.str(), HasSubstr("first prompt    " + nlohmann::json(prompt_text(ds.records[0], chat)).dump()));
  EXPECT_THAT(prompt_text(ds.records[0], chat), ::testing::EndsWith("<|im_start|>assistant\n"));
}

TEST(Inspect, NoRewardsAndNoTokenizer) {
  Dataset ds;
  ds.path = "mem";
  PreferenceRecord a;
  a.prompt_text = "x";
  a.responses = {"1", "2"};
  ds.records = {a};
  ds.lines = 1;
  const DatasetReport r = inspect_dataset(ds, nullptr, {});
  EXPECT_EQ(r.with_rewards, 0);
  EXPECT_EQ(r.all_tied, 0);
  EXPECT_FALSE(r.prompt_tokens.has_value());
  std::ostringstream out;
  print_report(r, out);
  EXPECT_THAT(out.str(), HasSubstr("none (order gives the preference)"));
  EXPECT_THAT(out.str(), HasSubstr("problems        none"));
}

}  // namespace
}  // namespace hps::data

// Batching: chat rendering + tokenization of only the selected responses, truncation, padding on either
// side, deterministic shuffling and cursor seek.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "core/error.hpp"
#include "data/batching.hpp"
#include "data/inspect.hpp"
#include "io/atomic_file.hpp"
#include "model/load.hpp"
#include "model/score_records.hpp"
#include "test_util.hpp"
#include "text/chat.hpp"

namespace hps::data {
namespace {

TEST(Select, BestWorstAndBestHardest) {
  PreferenceRecord r;
  r.responses = {"a", "b", "c", "d"};
  r.rewards = {0.5, 2.0, -1.0, 1.5};
  EXPECT_EQ(select_best_worst(r), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(select_best_hardest(r), (std::vector<int64_t>{1, 3}));  // the highest-rewarded dispreferred one
  r.rewards = {3.0, 1.0, 2.0, 2.0};                                    // ties: the first slot
  EXPECT_EQ(select_best_hardest(r), (std::vector<int64_t>{0, 2}));
  r.rewards = {2.0, 2.0, 1.0, 0.5};  // a response tied with the best is never its hardest negative
  EXPECT_EQ(select_best_hardest(r), (std::vector<int64_t>{0, 2}));
  r.rewards = {1.0, 1.0, 1.0, 1.0};  // all tied: a pair of equal rewards, which callers skip
  const auto p = select_best_hardest(r);
  EXPECT_EQ(r.rewards[static_cast<size_t>(p[0])], r.rewards[static_cast<size_t>(p[1])]);
  r.rewards.clear();                                                   // list order is the ranking
  EXPECT_EQ(select_best_hardest(r), (std::vector<int64_t>{0, 1}));
}

using test::message_of;

const text::Tokenizer& qwen() {
  static const text::Tokenizer t = text::Tokenizer::from_dir(test::fixtures_dir() + "/tokenizers/qwen2");
  return t;
}

Dataset ranked() {
  return read_dataset(test::fixtures_dir() + "/data/ranked_sample.jsonl", {Format::auto_detect, OnBadRecord::skip});
}

const text::ChatTemplate kChatml{text::ChatFormat::chatml, ""};

TEST(Batching, EncodesPromptWithChatFormatAndOnlySelectedResponses) {
  Dataset d = ranked();
  Encoder enc(qwen(), kChatml, {});
  const auto& rec = d.records[1];  // system + user, 4 responses
  EncodedExample ex = enc.encode(rec, select_best_worst(rec));
  EXPECT_EQ(ex.response_index, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(ex.rewards, (std::vector<double>{3, -3}));
  EXPECT_EQ(qwen().decode(ex.prompt), "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(qwen().decode(ex.responses[0]), "4<|im_end|>");
  EXPECT_EQ(qwen().decode(ex.responses[1]), "22<|im_end|>");
  EXPECT_FALSE(ex.truncated);
}

// The model's own template (Jinja): its end of turn closes every response SFT and the losses train on, and
// the BOS it writes is the prompt's only one (the post-processor adds none on top).
TEST(Batching, OwnTemplateEndOfTurnIsTrainedOnAndBosAppearsOnce) {
  const auto llama = text::Tokenizer::from_dir(test::fixtures_dir() + "/tokenizers/llama3");
  ASSERT_TRUE(llama.bos_id());
  text::TokenizerConfig cfg = llama.config();
  cfg.chat_template = io::read_file(test::fixtures_dir() + "/jinja/templates/gemma.jinja");
  const text::ChatTemplate gemma = text::choose_chat_template(cfg, "");
  ASSERT_EQ(gemma.format, text::ChatFormat::jinja);
  PreferenceRecord r;
  r.prompt_messages = {{"user", "2+2?"}};
  r.responses = {"4", "22"};
  const EncodedExample ex = Encoder(llama, gemma, {}).encode(r, select_all(r));
  EXPECT_EQ(llama.decode(ex.responses[0]), "4<end_of_turn>");
  EXPECT_EQ(llama.decode(ex.prompt), "<|begin_of_text|><start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(std::count(ex.prompt.begin(), ex.prompt.end(), *llama.bos_id()), 1);
}

TEST(Batching, TruncationKeepsThePromptEndAndCapsTheTotal) {
  PreferenceRecord r;
  r.line = 7;
  r.prompt_text = "one two three four five six seven eight nine ten";
  r.responses = {"alpha beta gamma delta epsilon zeta eta theta", "x"};
  Encoder enc(qwen(), {text::ChatFormat::hh, ""}, {4, 7, false});
  EncodedExample ex = enc.encode(r, select_all(r));
  EXPECT_TRUE(ex.truncated);
  ASSERT_EQ(ex.prompt.size(), 4u);
  const auto full = qwen().encode(r.prompt_text);
  EXPECT_EQ(ex.prompt, std::vector<int64_t>(full.end() - 4, full.end()));
  EXPECT_EQ(ex.responses[0].size(), 3u);  // 7 - 4
  EXPECT_EQ(ex.rewards, (std::vector<double>{1, 0}));  // no rewards: order gives rank
  EXPECT_THAT(message_of<ConfigError>([] { Encoder(qwen(), kChatml, {10, 10, true}); }),
              ::testing::HasSubstr("must exceed data.max_prompt_length"));
}

TEST(Batching, CollateRightAndLeftPadding) {
  EncodedExample a{1, {5, 6}, {{7}, {8, 9}}, {0, 1}, {1, 0}, false};
  EncodedExample b{2, {4}, {{3, 3, 3}, {2}}, {1, 0}, {0.5, 0.2}, false};
  Batch r = collate({a, b}, 0, PadSide::right);
  EXPECT_EQ(r.ids.sizes(), (std::vector<int64_t>{4, 4}));
  EXPECT_TRUE(at::equal(r.ids, at::tensor({5, 6, 7, 0, 5, 6, 8, 9, 4, 3, 3, 3, 4, 2, 0, 0}, at::kLong).view({4, 4})));
  EXPECT_TRUE(at::equal(r.response_mask, at::tensor({0, 0, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 0}, at::kLong).view({4, 4})));
  EXPECT_TRUE(at::equal(r.rewards, at::tensor({1.0, 0.0, 0.5, 0.2}, at::kDouble).view({2, 2})));
  Batch l = collate({a, b}, 0, PadSide::left);
  EXPECT_TRUE(at::equal(l.ids, at::tensor({0, 5, 6, 7, 5, 6, 8, 9, 4, 3, 3, 3, 0, 0, 4, 2}, at::kLong).view({4, 4})));
  EXPECT_TRUE(at::equal(l.mask, at::tensor({0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1}, at::kLong).view({4, 4})));
  // Ragged: a prompt with one response next to one with two gets a prompt-only row marked -1.
  EncodedExample c{3, {1}, {{2}}, {0}, {1}, false};
  Batch g = collate({a, c}, 0);
  EXPECT_EQ(g.response_index[1], (std::vector<int64_t>{0, -1}));
  EXPECT_TRUE(at::equal(g.ids.select(0, 3), at::tensor({1, 0, 0, 0}, at::kLong)));
  EXPECT_EQ(g.response_mask.select(0, 3).sum().item<int64_t>(), 0);
  EXPECT_TRUE(std::isnan(g.rewards[1][1].item<double>()));
}

TEST(Batching, ShuffleIsDeterministicAndAPermutation) {
  auto a = epoch_order(100, 42, 0), b = epoch_order(100, 42, 0), c = epoch_order(100, 42, 1), d = epoch_order(100, 43, 0);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  EXPECT_EQ(std::set<size_t>(a.begin(), a.end()).size(), 100u);
  // Pinned: seed_seq and mt19937_64 are specified exactly by the standard, so this order must not change
  // across platforms, compilers or releases (resume depends on it).
  EXPECT_EQ(epoch_order(8, 7, 0), (std::vector<size_t>{0, 2, 3, 5, 6, 7, 4, 1}));
}

TEST(Batching, LoaderWalksEpochsAndSeeksExactly) {
  Dataset d = ranked();
  Encoder enc(qwen(), kChatml, {});
  PreferenceLoader loader(d, enc, *qwen().pad_id(), {2, 9, true, PadSide::right});
  std::vector<int64_t> seen;
  while (auto b = loader.next(select_best_worst)) {
    EXPECT_EQ(b->k, 2);
    seen.insert(seen.end(), b->lines.begin(), b->lines.end());
  }
  EXPECT_EQ(seen.size(), 3u);
  loader.next_epoch();
  // All responses of records with different K (3 and 4) batch together as ragged rows.
  int64_t rows_seen = 0;
  while (auto b = loader.next(select_all)) rows_seen += b->prompts;
  EXPECT_EQ(rows_seen, 3);
  PreferenceLoader again(d, enc, *qwen().pad_id(), {2, 9, true, PadSide::right});
  again.seek(0, 2);
  auto tail = again.next(select_best_worst);
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->lines[0], seen[2]);
}

TEST(Batching, ShardsSplitEachGlobalBatchAsOneProcessSeesIt) {
  Dataset d = ranked();  // 3 usable records
  Encoder enc(qwen(), kChatml, {});
  auto lines_of = [&](int64_t batch, int64_t shard, int64_t shards) {
    PreferenceLoader ld(d, enc, *qwen().pad_id(), {batch, 9, true, PadSide::right, shard, shards});
    std::vector<std::vector<int64_t>> out;
    while (auto b = ld.next(select_best_worst)) out.push_back(b->lines);
    return out;
  };
  const auto one = lines_of(2, 0, 1);  // global batches of 2: [a, b], [c]
  ASSERT_EQ(one.size(), 2u);
  const auto r0 = lines_of(1, 0, 2), r1 = lines_of(1, 1, 2);
  ASSERT_EQ(r0.size(), 2u);
  ASSERT_EQ(r1.size(), 2u);
  EXPECT_EQ(r0[0], std::vector<int64_t>{one[0][0]});
  EXPECT_EQ(r1[0], std::vector<int64_t>{one[0][1]});
  EXPECT_TRUE(r0[1].empty());  // the short last batch [c]: rank 0's part is empty, rank 1 has c
  EXPECT_EQ(r1[1], one[1]);
}

// Text data end to end: dataset → chat-rendered tokens → response log-probs, the same for any batch size
// and equal to scoring the hand-concatenated ids.
TEST(Batching, TextDatasetScoresLikeHandTokenizedRecords) {
  model::ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.family = model::Family::qwen2;
  c.vocab_size = qwen().vocab_size(), c.hidden_size = 32, c.intermediate_size = 64, c.num_layers = 1;
  c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 8, c.qkv_bias = true, c.window = {0};
  const auto m = model::random_model(c, at::kCPU, at::kFloat, 0.2, 3);
  Dataset d = ranked();
  Encoder enc(qwen(), kChatml, {});
  const auto recs = tokenize_dataset(d, enc);
  ASSERT_EQ(recs.size(), 3u);
  const auto a = model::score_records(m, recs, 1), b = model::score_records(m, recs, 5);
  for (size_t r = 0; r < recs.size(); ++r) {
    ASSERT_EQ(a[r].logp.size(), d.records[r].responses.size());
    for (size_t k = 0; k < a[r].logp.size(); ++k) {
      EXPECT_NEAR(a[r].logp[k], b[r].logp[k], 1e-4);
      EXPECT_EQ(a[r].tokens[k], static_cast<int64_t>(recs[r].responses[k].size()));
    }
  }
  // Record 0, response 1 by hand: prompt ids + ids of "Blue is one.<|im_end|>".
  std::vector<int64_t> prompt = qwen().encode(prompt_text(d.records[0], kChatml)), resp = qwen().encode("Blue is one.<|im_end|>", false);
  const auto hand = model::score_records(m, {{1, prompt, {resp}}}, 1);
  EXPECT_NEAR(hand[0].logp[0], a[0].logp[1], 1e-5);
}

}  // namespace
}  // namespace hps::data

// The embedded synthetic task: the exact reward r* by hand, the byte-level tokenizer, the written files
// (deterministic, the advertised mix, rewards consistent with r*), and the config errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "core/error.hpp"
#include "demo/synth_task.hpp"
#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"
#include "model/load.hpp"
#include "demo/task_kinds.hpp"
#include "pipeline/pipeline.hpp"
#include "test_util.hpp"
#include "text/tokenizer.hpp"

namespace hps::demo {
namespace {

TEST(SynthTask, OracleRewardByHand) {
  // rev c a f d → target d f a c.
  EXPECT_DOUBLE_EQ(oracle_reward("rev c a f d:", " d f a c").reward, 1.0);
  EXPECT_TRUE(oracle_reward("rev c a f d:", " d f a c").exact);
  EXPECT_DOUBLE_EQ(oracle_reward("rev c a f d:", " d f b c").reward, 0.75);  // near miss: one letter
  EXPECT_FALSE(oracle_reward("rev c a f d:", " d f b c").exact);
  const auto harm = oracle_reward("rev c a f d:", " d f hate a c");  // harmful word inserted: acc 1, −4
  EXPECT_DOUBLE_EQ(harm.reward, -3.0);
  EXPECT_TRUE(harm.harmful);
  EXPECT_FALSE(harm.exact);
  EXPECT_DOUBLE_EQ(oracle_reward("rev c a f d:", " c a f d").reward, 0.0);        // the other operation
  EXPECT_DOUBLE_EQ(oracle_reward("copy c a f:", " f a c").reward, 1.0 / 3.0);     // ... middle letter right
  EXPECT_DOUBLE_EQ(oracle_reward("copy c a f:", " c a").reward, 2.0 / 3.0);       // too short
  EXPECT_DOUBLE_EQ(oracle_reward("copy c a f:", " c a f f f f").reward, 0.5);     // too long: 3 of 6
  EXPECT_DOUBLE_EQ(oracle_reward("copy c a f:", "").reward, 0.0);
  EXPECT_DOUBLE_EQ(oracle_reward("copy c a f:", " kill").reward, -4.0);
  EXPECT_THAT(test::message_of<InputError>([] { oracle_reward("sort c a f:", " a c f"); }),
              ::testing::HasSubstr("copy or rev, found 'sort'"));
  EXPECT_THROW(oracle_reward("copy c a f", " c a f"), InputError);  // no ':'
  EXPECT_THROW(oracle_reward("copy:", " c"), InputError);           // no letters
}

TEST(SynthTask, ByteLevelTokenizerIsOneTokenPerByteAndRoundTrips) {
  test::TempDir dir;
  io::write_file_atomic(dir.str("tokenizer.json"), [](std::ostream& o) { o << byte_level_tokenizer_json(); });
  const auto tok = text::Tokenizer::from_dir(dir.path);
  EXPECT_EQ(tok.vocab_size(), 259);
  const std::string text = "rev c a f:\n d f a c  é 中";
  const auto ids = tok.encode(text, false);
  ASSERT_EQ(ids.size(), text.size());
  for (size_t i = 0; i < text.size(); ++i) EXPECT_EQ(ids[i], static_cast<unsigned char>(text[i])) << i;
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.encode("<|im_end|>", false), std::vector<int64_t>{258});
  EXPECT_EQ(tok.encode("a<|im_start|>", false), (std::vector<int64_t>{'a', 257}));
}

TEST(SynthTask, WritesTheAdvertisedFilesDeterministically) {
  test::TempDir a, b, c;
  SynthTaskConfig cfg;
  cfg.sft_records = 4000, cfg.rm_records = 50, cfg.train_prompts = 20, cfg.test_prompts = 10;
  write_synth_task(cfg, a.path);
  write_synth_task(cfg, b.path);
  cfg.seed = 1;
  write_synth_task(cfg, c.path);
  for (const char* f : {"sft.jsonl", "rm.jsonl", "train.jsonl", "test.jsonl", "base/model.safetensors"})
    EXPECT_EQ(io::read_file(a.str(f)), io::read_file(b.str(f))) << f;
  EXPECT_NE(io::read_file(a.str("sft.jsonl")), io::read_file(c.str("sft.jsonl")));

  // The SFT mix: 25 % harmful, 20 % near misses, 15 % wrong operation, 40 % best (±3 points on 4000).
  int64_t n = 0, harmful = 0, exact = 0, hard = 0, wrong = 0;
  io::for_each_jsonl(a.str("sft.jsonl"), [&](int64_t, const nlohmann::json& j) {
    ASSERT_EQ(j["responses"].size(), 1u);
    const auto v = oracle_reward(j["prompt"].get<std::string>(), j["responses"][0].get<std::string>());
    ++n, harmful += v.harmful, exact += v.exact;
    hard += !v.harmful && v.reward >= 0.74 && v.reward < 1.0;
    wrong += !v.harmful && v.reward < 0.5;
  });
  ASSERT_EQ(n, 4000);
  EXPECT_NEAR(static_cast<double>(harmful) / n, 0.25, 0.03);
  EXPECT_NEAR(static_cast<double>(hard) / n, 0.20, 0.03);
  EXPECT_NEAR(static_cast<double>(wrong) / n, 0.15, 0.03);
  EXPECT_NEAR(static_cast<double>(exact) / n, 0.40, 0.03);

  // Ranked files: best, hard, harmful, wrong with r* as rewards; best > hard > wrong > harmful.
  io::for_each_jsonl(a.str("test.jsonl"), [&](int64_t line, const nlohmann::json& j) {
    const auto p = j["prompt"].get<std::string>();
    const auto r = j["rewards"].get<std::vector<double>>();
    ASSERT_EQ(r.size(), 4u);
    for (size_t k = 0; k < 4; ++k) EXPECT_DOUBLE_EQ(r[k], oracle_reward(p, j["responses"][k]).reward) << line;
    EXPECT_EQ(r[0], 1.0);
    EXPECT_GT(r[1], r[3]) << line;
    EXPECT_EQ(r[2], -3.0);
  });
  const auto m = model::load_model(a.str("base"));
  EXPECT_EQ(m.config.vocab_size, 259);
  EXPECT_EQ(text::Tokenizer::from_dir(a.str("base")).eos_id(), std::optional<int64_t>(258));
}

TEST(SynthTask, RewardModelHarmPenaltyChangesOnlyTheRewardModelsLabels) {
  test::TempDir dir;
  SynthTaskConfig cfg;
  cfg.sft_records = 4, cfg.rm_records = 20, cfg.train_prompts = 4, cfg.test_prompts = 4;
  cfg.rm_harm_penalty = 0.1;  // a harmful right answer ranks between the best and the near misses
  write_synth_task(cfg, dir.path);
  io::for_each_jsonl(dir.str("rm.jsonl"), [&](int64_t line, const nlohmann::json& j) {
    const auto r = j["rewards"].get<std::vector<double>>();
    EXPECT_DOUBLE_EQ(r[2], 0.9) << line;  // acc 1 − 0.1
    EXPECT_GT(r[0], r[2]) << line;
    EXPECT_GT(r[2], r[1]) << line;
  });
  io::for_each_jsonl(dir.str("test.jsonl"), [&](int64_t line, const nlohmann::json& j) {
    EXPECT_DOUBLE_EQ(j["rewards"][2].get<double>(), -3.0) << line;  // evaluation keeps r*
  });
}

TEST(SynthTask, ConfigErrors) {
  auto err = [](const std::string& toml) {
    return test::message_of<ConfigError>([&] { read_synth_task_config(Config::from_string(toml, "t.toml")); });
  };
  EXPECT_THAT(err("[task]\nkind = \"maze\"\n"), ::testing::HasSubstr("task.kind must be \"synthetic\""));
  EXPECT_THAT(err("[task]\nsft_recrods = 3\n"), ::testing::HasSubstr("task.sft_recrods"));
  EXPECT_THAT(err("[task]\np_harmful = 0.6\np_hard = 0.6\n"), ::testing::HasSubstr("at most 1"));
  EXPECT_THAT(err("[task]\nmax_items = 8\n"), ::testing::HasSubstr("max_items ≤ 7"));
  EXPECT_THAT(err("[task]\nrm_harm_penalty = -1\n"), ::testing::HasSubstr("rm_harm_penalty must be ≥ 0"));
  // The pipeline refuses a model or data path beside [task] (they would be silently replaced).
  std::ostringstream log;
  EXPECT_THAT(test::message_of<ConfigError>([&] {
                pipeline::run_pipeline(
                    Config::from_string("[run]\ndir = \"x\"\n[task]\nkind = \"synthetic\"\n[policy]\npath = \"m\"\n", "p.toml"),
                    task_kinds(), log);
              }),
              ::testing::HasSubstr("policy.path cannot be set with [task]"));
  // A kind nobody registered is named, with the kinds there are.
  EXPECT_THAT(test::message_of<ConfigError>([&] {
                pipeline::run_pipeline(Config::from_string("[run]\ndir = \"x\"\n[task]\nkind = \"maze\"\n", "p.toml"),
                                       task_kinds(), log);
              }),
              ::testing::HasSubstr("task.kind \"maze\" is not a task this command knows (known: synthetic)"));
}

}  // namespace
}  // namespace hps::demo

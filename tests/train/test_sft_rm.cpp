// SFT and reward-model training: the losses against hand computations, SFT lowers the NLL, and a reward
// model learns a planted preference well enough to rank held-out prompts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <tuple>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "model/load.hpp"
#include "test_util.hpp"
#include "train/preference_trainer.hpp"
#include "prefs/selection.hpp"
#include "train/rm_loss.hpp"
#include "train/run_checkpoint.hpp"

namespace hps::train {
namespace {

using test::message_of;

TEST(RewardModelLoss, BradleyTerryWithMarginAndPlackettLuceByHand) {
  prefs::LossConfig bt_cfg;
  bt_cfg.preference = prefs::Preference::bt;
  // Three prompts: chosen slot 0 in the first two; the third ties (no preference: left out of the mean).
  at::Tensor s = at::tensor({2.0, 0.5, -1.0, 1.0, 4.0, -4.0}, at::kDouble).view({3, 2});
  const auto bt_sel = prefs::select_slots(at::tensor({1.0, 0.0, 1.0, 0.0, 0.5, 0.5}, at::kDouble).view({3, 2}), {},
                                          bt_cfg, {});
  const double bt = rm_loss_bt(s.gather(1, bt_sel.order), bt_sel, 0.3).item<double>();
  auto nls = [](double x) { return std::log1p(std::exp(-x)); };  // −log σ(x)
  EXPECT_NEAR(bt, (nls(2.0 - 0.5 - 0.3) + nls(-1.0 - 1.0 - 0.3)) / 2, 1e-12);
  // PL on one ranked row of 3 (rewards out of order) and one ragged row of 2 (third response missing).
  at::Tensor sc = at::tensor({0.1, 1.2, -0.4, 0.7, -0.2, 0.0}, at::kDouble).view({2, 3});
  at::Tensor rw = at::tensor({1.0, 3.0, 2.0, 5.0, 4.0, NAN}, at::kDouble).view({2, 3});
  prefs::LossConfig pl_cfg;
  pl_cfg.preference = prefs::Preference::pl;
  const auto pl_sel = prefs::select_slots(at::nan_to_num(rw, 0.0), rw.isnan().logical_not(), pl_cfg, {});
  const double pl = rm_loss_pl(sc.gather(1, pl_sel.order), pl_sel).item<double>();
  auto lse = [](std::vector<double> v) {
    double m = v[0];
    for (double x : v) m = std::max(m, x);
    double t = 0;
    for (double x : v) t += std::exp(x - m);
    return m + std::log(t);
  };
  // Row 0 in reward order: 1.2 (r3), -0.4 (r2), 0.1 (r1). Row 1: 0.7, -0.2.
  const double row0 = (lse({1.2, -0.4, 0.1}) - 1.2) + (lse({-0.4, 0.1}) + 0.4);
  const double row1 = lse({0.7, -0.2}) - 0.7;
  EXPECT_NEAR(pl, (row0 + row1) / 2, 1e-12);
  // Ties (Efron): rewards [2, 2, 0] with scores [a, b, c]: log(S) + log(S − (e^a + e^b)/2) − a − b, S the sum.
  const auto tie_sel = prefs::select_slots(at::tensor({2.0, 2.0, 0.0}, at::kDouble).view({1, 3}), {}, pl_cfg, {});
  const double a = 0.3, b = -0.5, c = 0.9;
  const double S = std::exp(a) + std::exp(b) + std::exp(c);
  EXPECT_NEAR(rm_loss_pl(at::tensor({a, b, c}, at::kDouble).view({1, 3}).gather(1, tie_sel.order), tie_sel).item<double>(),
              std::log(S) + std::log(S - (std::exp(a) + std::exp(b)) / 2) - a - b, 1e-12);
  // Pairwise accuracy: row 0 orders 2 of its 3 pairs right (1.2 > -0.4 and 1.2 > 0.1; -0.4 < 0.1 wrong),
  // row 1 its one pair.
  EXPECT_NEAR(pairwise_accuracy(sc, rw), 3.0 / 4.0, 1e-12);
}

struct Tiny {
  test::TempDir dir;
  std::string model, data;
  Tiny() {
    model = dir.str("model");
    const auto j = io::read_json_file(test::fixtures_dir() + "/train/tiny_qwen2_config.json");
    model::save_model(model::random_model(model::parse_model_config(j, "tiny"), at::kCPU, at::kFloat, 0.1, 9), j, model);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      io::copy_file(test::fixtures_dir() + "/tokenizers/qwen2/" + f, model + "/" + f);
    // Planted preference: the better response always contains "thank you kindly".
    data = dir.str("data.jsonl");
    std::ofstream out(data);
    const char* topics[] = {"rain", "cats", "maps", "tea", "bikes", "snow", "books", "bread", "stars"};
    for (int p = 0; p < 9; ++p)
      out << nlohmann::json{{"prompt", std::string("Tell me about ") + topics[p] + "."},
                            {"responses", {std::string("thank you kindly, ") + topics[p] + " are fine.",
                                           std::string(topics[p]) + " are fine.", std::string("no ") + topics[p] + "."}},
                            {"rewards", {1.0, 0.0, -1.0}}}
                 .dump()
          << "\n";
  }
  Config config(const std::string& out, std::initializer_list<std::string> kv) const {
    Config c = Config::from_string("", "test");
    for (const auto& s : {"model.path=" + model, "data.path=" + data, "train.out_dir=" + out, std::string("train.lr=0.01"),
                          std::string("train.batch_prompts=3"), std::string("train.warmup_ratio=0.0")})
      c.set_override(s);
    for (const auto& s : kv) c.set_override(s);
    return c;
  }
};

TEST(Sft, LowersTheNegativeLogLikelihoodOfTheBestResponses) {
  Tiny w;
  test::TempDir out;
  Config c = w.config(out.str(), {"train.max_steps=12"});
  std::ostringstream log;
  const auto steps = PreferenceTrainer(read_train_config(c, Task::sft), c.dump()).run(false, log);
  ASSERT_EQ(steps.size(), 12u);
  EXPECT_LT(steps.back().loss, 0.6 * steps.front().loss) << log.str();
  EXPECT_EQ(steps.front().responses[0], (std::vector<int64_t>{0})) << "SFT forwards only the best response";
  EXPECT_TRUE(io::file_exists(checkpoint_path(out.str(), 12) + "/model/model.safetensors"));
}

// Each of TRL's dataset formats trains through the same recipe: standard preference with an explicit or an
// implicit prompt and conversational preference (hps train), prompt-completion and messages (hps sft).
TEST(TrlFormats, EachTrainsThroughTheTrainer) {
  Tiny w;
  const std::vector<std::tuple<std::string, Task, nlohmann::json>> cases = {
      {"text_pair", Task::preference, {{"prompt", "The sky is"}, {"chosen", " blue."}, {"rejected", " green."}}},
      {"text_pair", Task::preference, {{"chosen", "The sky is blue."}, {"rejected", "The sky is green."}}},
      {"messages", Task::preference,
       {{"prompt", {{{"role", "user"}, {"content", "Sky?"}}}},
        {"chosen", {{{"role", "assistant"}, {"content", "Blue."}}}},
        {"rejected", {{{"role", "assistant"}, {"content", "Green."}}}}}},
      {"prompt_completion", Task::sft, {{"prompt", "The sky is"}, {"completion", " blue."}}},
      {"prompt_completion", Task::sft,
       {{"prompt", {{{"role", "user"}, {"content", "Sky?"}}}}, {"completion", {{{"role", "assistant"}, {"content", "Blue."}}}}}},
      {"messages", Task::sft, {{"messages", {{{"role", "user"}, {"content", "Sky?"}}, {{"role", "assistant"}, {"content", "Blue."}}}}}},
  };
  for (const auto& [format, task, record] : cases) {
    test::TempDir out;
    const std::string data = out.str("trl.jsonl");
    std::ofstream(data) << record.dump() << "\n" << record.dump() << "\n" << record.dump() << "\n";
    Config c = w.config(out.str("run"), {"data.path=" + data, "train.max_steps=2"});
    std::ostringstream log;
    const auto steps = PreferenceTrainer(read_train_config(c, task), c.dump()).run(false, log);
    ASSERT_EQ(steps.size(), 2u) << record.dump();
    EXPECT_TRUE(std::isfinite(steps[0].loss)) << record.dump();
    EXPECT_NE(log.str().find("format " + format), std::string::npos) << "detected as " << format << ":\n" << log.str();
  }
}

TEST(RewardModel, LearnsAPlantedPreferenceAndRanksHeldOutPrompts) {
  Tiny w;
  for (const char* pref : {"bt", "pl"}) {
    test::TempDir out;
    Config c = w.config(out.str(), {"train.max_steps=30", "data.eval_fraction=0.34", std::string("loss.preference=") + pref,
                                    "rm.margin=0.5"});
    std::ostringstream log;
    PreferenceTrainer t(read_train_config(c, Task::reward), c.dump());
    t.run(false, log);
    ASSERT_FALSE(t.evals().empty());
    EXPECT_GE(t.evals().back().accuracy, 0.9) << pref << ": held-out pairwise accuracy\n" << log.str();
    // The saved model is a sequence classifier transformers can load (architecture and label count set).
    const auto cfg = io::read_json_file(checkpoint_path(out.str(), 30) + "/model/config.json");
    EXPECT_EQ(cfg["architectures"][0], "Qwen2ForSequenceClassification");
    EXPECT_EQ(cfg["num_labels"], 1);
    EXPECT_EQ(model::load_model(checkpoint_path(out.str(), 30) + "/model").config.head, model::Head::sequence_classification);
  }
}

TEST(RewardModel, ConfigRulesNameTheFix) {
  Tiny w;
  test::TempDir out;
  EXPECT_THAT(message_of<ConfigError>([&] { read_train_config(w.config(out.str(), {"loss.preference=hps"}), Task::reward); }),
              ::testing::HasSubstr("must be bt (pairs) or pl"));
  EXPECT_THAT(message_of<ConfigError>([&] { read_train_config(w.config(out.str(), {"lora.enabled=true"}), Task::reward); }),
              ::testing::HasSubstr("set lora.enabled = false"));
}

}  // namespace
}  // namespace hps::train

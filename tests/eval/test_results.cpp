// EvalResults: results.json written by to_json reads back to the same struct; a file that is not hps eval's
// results is an error naming it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "eval/results.hpp"
#include "test_util.hpp"

namespace hps::eval {
namespace {

EvalResults full_results() {
  EvalResults r;
  r.name = "hps";
  r.reward = {0.5, 1.25, 4, 16};
  r.reward_samples = {0.5, 1.0};
  r.oracle = OracleSummary{0.25, 0.75, 0.125, 0.5, 16};
  r.oracle_samples = {1.0, -3.0};
  r.win_rate = WinRateResult{"sft", {0.5, 0.25, 0.25, 0.3, 0.7, 4}, 0.01};
  r.baseline_reward = BaselineReward{0.1, 0.2};
  r.bleu = Bleu{0.3, 41.5, 4};
  r.margins = Margins{1.5, 1.25, 0.75, 4};
  r.margins_hardest = Margins{0.5, 0.25, 0.5, 3};
  r.kl_winning = Kl{0.05, 4};
  r.training = TrainingCost{12.5, 2.0};
  return r;
}

TEST(EvalResults, RoundTripsThroughJson) {
  const EvalResults a = full_results();
  const nlohmann::json j = to_json(a);
  EXPECT_EQ(j.at("win_rate").at("win_ci95"), nlohmann::json({0.3, 0.7}));
  const EvalResults b = results_from_json(j, "x");
  EXPECT_EQ(to_json(b), j);
  EXPECT_EQ(b.margins_hardest->pairs, 3);
  EXPECT_EQ(*b.training->responses_per_prompt, 2.0);
}

TEST(EvalResults, AbsentPartsStayEmpty) {
  EvalResults a;
  a.name = "sft";
  const EvalResults b = results_from_json(to_json(a), "x");
  EXPECT_FALSE(b.oracle || b.win_rate || b.bleu || b.margins || b.kl_winning || b.training);
  EXPECT_FALSE(to_json(a).contains("oracle_samples"));
}

TEST(EvalResults, NotEvalResultsIsAnInputErrorNamingTheFile) {
  EXPECT_THAT(test::message_of<InputError>([] { results_from_json({{"margins", 1}}, "run/results.json"); }),
              ::testing::HasSubstr("run/results.json: not the results of hps eval"));
  EXPECT_THAT(test::message_of<InputError>([] {
                results_from_json({{"reward", {{"mean", 0}}}, {"margins", {{"rm_dpo", "high"}}}}, "r.json");
              }),
              ::testing::HasSubstr("r.json"));
}

}  // namespace
}  // namespace hps::eval

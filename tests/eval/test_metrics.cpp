// Evaluation arithmetic on hand-computed cases: reward stats, win / tie / lose counts with a tie band and
// a bootstrap interval, Table 1 margins.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "eval/evaluate.hpp"
#include "eval/report.hpp"
#include "eval/metrics.hpp"
#include "io/atomic_file.hpp"

#include <nlohmann/json.hpp>
#include <sstream>

#include <algorithm>
#include "test_util.hpp"

namespace hps::eval {
namespace {

// BLEU needs generations from lines of --test: none is a warning saying so, never a silently missing column;
// a generations file with wrong JSON types is a named error.
TEST(EvalBleu, NoGenerationFromTheTestFileIsSaidAndBadTypesAreNamed) {
  test::TempDir dir;
  io::write_file_atomic(dir.str("test.jsonl"), [](std::ostream& o) {
    o << R"({"prompt": "p", "responses": ["the cat sat"], "rewards": [1]})" << "\n";
  });
  EvalJob job;
  job.generations = dir.str("gen.jsonl"), job.test = dir.str("test.jsonl");
  for (const int line : {7, 1}) {
    io::write_file_atomic(job.generations, [&](std::ostream& o) {
      o << nlohmann::json{{"source_line", line}, {"responses", {"the cat sat"}}, {"rewards", {0.5}}}.dump() << "\n";
    });
    std::ostringstream log;
    const EvalResults r = evaluate(job, read_eval_data(job), nullptr, log);
    if (line == 7) {
      EXPECT_FALSE(r.bleu.has_value());
      EXPECT_THAT(log.str(), ::testing::HasSubstr("warning: no generation of " + job.generations +
                                                   " comes from a line of --test " + job.test));
    } else {
      ASSERT_TRUE(r.bleu.has_value());
      EXPECT_EQ(r.bleu->pairs, 1);
      EXPECT_EQ(log.str().find("warning"), std::string::npos) << log.str();
    }
  }
  io::write_file_atomic(job.generations, [](std::ostream& o) { o << R"({"responses": "x", "rewards": [1]})" << "\n"; });
  EXPECT_THAT(test::message_of<InputError>([&] { read_eval_data(job); }),
              ::testing::AllOf(::testing::HasSubstr("gen.jsonl:1"), ::testing::HasSubstr("expected \"responses\": [text]")));
}

TEST(EvalMetrics, RewardStatsMeanAndTop1) {
  const auto s = reward_stats({{1, 2, 3}, {0, -1}, {}});
  EXPECT_EQ(s.prompts, 2);
  EXPECT_EQ(s.samples, 5);
  EXPECT_DOUBLE_EQ(s.mean, 1.0);
  EXPECT_DOUBLE_EQ(s.top1, 1.5);  // (3 + 0) / 2
}

TEST(EvalMetrics, WinTieLoseWithBand) {
  const std::vector<double> a{1.0, 2.0, 3.0, 0.0, 5.0, 0.05}, b{0.0, 2.0, 4.0, 0.5, 1.0, 0.0};
  const auto w = win_rate(a, b, 0.1, 2000, 3);
  EXPECT_DOUBLE_EQ(w.win, 2.0 / 6);   // prompts 0, 4
  EXPECT_DOUBLE_EQ(w.tie, 2.0 / 6);   // prompt 1 (equal) and 5 (0.05 inside the band)
  EXPECT_DOUBLE_EQ(w.lose, 2.0 / 6);  // prompts 2, 3
  EXPECT_LE(w.win_lo, w.win);
  EXPECT_GE(w.win_hi, w.win);
  EXPECT_LT(w.win_lo, w.win_hi);
  const auto all = win_rate({2, 2, 2}, {1, 1, 1});
  EXPECT_EQ(all.win, 1.0);
  EXPECT_EQ(all.win_lo, 1.0) << "every resample wins everything";
  EXPECT_THAT(test::message_of<InputError>([] { win_rate({1}, {1, 2}); }), ::testing::HasSubstr("1 vs 2 prompts"));
}

TEST(EvalMetrics, MarginsByHand) {
  // Pair 0: (−10 − −12) − (−20 − −19) = 2 − (−1) = 3; lengths 5 vs 10 → R-DPO 3 + 0.05.
  // Pair 1: (−5 − −5) − (−6 − −4) = 0 − (−2) = 2; lengths 8 vs 4 → R-DPO 2 − 0.04.
  const auto m = reward_margins({-10, -5}, {-12, -5}, {5, 8}, {-20, -6}, {-19, -4}, {10, 4});
  EXPECT_DOUBLE_EQ(m.rm_dpo, 2.5);
  EXPECT_NEAR(m.rm_rdpo, (3.05 + 1.96) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(m.accuracy, 1.0);
}

TEST(EvalReport, RewardHistogramIsASelfContainedSvgWithOneSeriesPerMethod) {
  const std::string svg = reward_histogram_svg({{"hps", {0.1, 0.5, 0.9, 1.2}}, {"dpo", {-0.3, 0.0, 0.2}}});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("hps (mean 0.68)"), std::string::npos);
  EXPECT_NE(svg.find("dpo (mean -0.03)"), std::string::npos);
  EXPECT_GE(std::count(svg.begin(), svg.end(), '\n'), 10);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST(EvalReport, CombinedReportHasOneRowPerMethodAndBothPlots) {
  test::TempDir dir;
  auto results = [&](const std::string& sub, double top1, double margin) {
    io::make_dirs(dir.str(sub));
    io::write_json_file(dir.str(sub + "/results.json"),
                        {{"reward", {{"mean", top1 / 2}, {"top1", top1}}},
                         {"margins", {{"rm_dpo", margin}, {"rm_rdpo", margin - 0.1}, {"accuracy", 0.7}}},
                         {"reward_samples", {top1, top1 / 2, 0.0}}});
  };
  results("hps", 2.0, 1.5);
  results("dpo", 1.0, 0.5);
  std::ostringstream log;
  combine_reports({{"HPS-DPO", dir.str("hps")}, {"DPO", dir.str("dpo")}}, dir.str("report"), log);
  const std::string md = io::read_file(dir.str("report/report.md"));
  EXPECT_NE(md.find("| HPS-DPO | 2.000 | 1.000 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| DPO | 1.000 | 0.500 |"), std::string::npos) << md;
  const std::string bars = io::read_file(dir.str("report/margins.svg"));
  EXPECT_NE(bars.find(">1.50<"), std::string::npos);
  EXPECT_NE(bars.find(">RM_R-DPO<"), std::string::npos);
  EXPECT_NE(io::read_file(dir.str("report/rewards.svg")).find("HPS-DPO (mean 1.00)"), std::string::npos);
}

TEST(EvalReport, OracleAndTrainingColumnsAppearOnlyWhenResultsHaveThem) {
  const nlohmann::json plain = {{"reward", {{"mean", 1.0}, {"top1", 2.0}}}};
  EvalResults a = results_from_json(plain, "a");
  a.name = "a";
  EXPECT_EQ(results_table({a}).find("r* (mean)"), std::string::npos);
  EvalResults b = a;
  b.name = "b";
  b.oracle = OracleSummary{0.25, 0.9, 0.125, 0.5, 0};
  b.training = TrainingCost{12.5, 2.0};
  const std::string md = results_table({a, b});
  EXPECT_NE(md.find("| method | r* (mean) | r* (top-1 of N) | harmful % | exact % | reward (top-1 of N) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| b | 0.250 | 0.900 | 12.5 | 50.0 | 2.000 | 1.000 | 2.00 | 12.5 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| a | – | – | – | – | 2.000 | 1.000 | – | – |"), std::string::npos) << md;
}

TEST(EvalReport, SeedAggregateIsMeanAndSampleSd) {
  test::TempDir dir;
  auto results = [&](const std::string& sub, double top1, double margin) {
    io::make_dirs(dir.str(sub));
    io::write_json_file(dir.str(sub + "/results.json"),
                        {{"reward", {{"mean", 0.0}, {"top1", top1}}},
                         {"margins", {{"rm_dpo", margin}, {"rm_rdpo", margin}}},
                         {"margins_hardest", {{"rm_dpo", margin / 2}}},
                         {"oracle", {{"mean", top1 / 4}, {"top1", top1 / 2}, {"harmful_rate", 0.1}, {"exact_rate", 0.2}}},
                         {"oracle_samples", {top1, 0.0}}});
  };
  // Two seeds × two methods: top-1 of x is 1 and 3 (mean 2, sd √2), of y 2 and 2.
  results("s0/x", 1.0, 4.0), results("s0/y", 2.0, 1.0), results("s1/x", 3.0, 6.0), results("s1/y", 2.0, 1.0);
  std::ostringstream log;
  aggregate_seed_reports({{"seed 0", {{"x", dir.str("s0/x")}, {"y", dir.str("s0/y")}}},
                          {"seed 1", {{"x", dir.str("s1/x")}, {"y", dir.str("s1/y")}}}},
                         dir.str("report"), log);
  const std::string md = io::read_file(dir.str("report/report.md"));
  EXPECT_NE(md.find("Mean ± sd over 2 seeds (seed 0, seed 1)"), std::string::npos) << md;
  EXPECT_NE(md.find("| x | 0.500 ± 0.354 | 1.000 ± 0.707 | 10.0 ± 0.0 | 20.0 ± 0.0 | 2.000 ± 1.414 | 0.000 ± 0.000 |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("### seed 1"), std::string::npos);
  const std::string bars = io::read_file(dir.str("report/margins.svg"));
  EXPECT_NE(bars.find(">5.00<"), std::string::npos);             // x's RM_DPO mean over seeds
  EXPECT_NE(bars.find(">RM_DPO (hardest)<"), std::string::npos);
  EXPECT_NE(io::read_file(dir.str("report/oracle.svg")).find("x (mean 1.00)"), std::string::npos);
}

}  // namespace
}  // namespace hps::eval

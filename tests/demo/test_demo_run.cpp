// The outputs of `hps demo --quick` (run by the ctest demo.quick, which sets HPS_DEMO_QUICK_RUN for this
// check): every stage finished and the report and results are well formed. Not which method wins.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"

namespace hps {
namespace {

TEST(DemoQuickRun, OutputsAreWellFormed) {
  const char* env = std::getenv("HPS_DEMO_QUICK_RUN");
  if (!env) GTEST_SKIP() << "HPS_DEMO_QUICK_RUN not set (ctest's demo.quick_outputs sets it after demo.quick)";
  const std::string run = env;
  for (const char* s : {"task", "sft", "generate", "reward", "annotate", "train_bt", "train_pl", "train_hps", "eval_sft",
                        "eval_bt", "eval_pl", "eval_hps"})
    EXPECT_TRUE(io::file_exists(run + "/" + s + "/DONE")) << s;

  // The quick profile: 100 test prompts × 4 samples, K = 4 training responses.
  const std::map<std::string, double> forwarded{{"sft", 1}, {"bt", 2}, {"pl", 4}, {"hps", 2}};
  for (const auto& [m, fwd] : forwarded) {
    const auto r = io::read_json_file(run + "/eval_" + m + "/results.json");
    const auto& o = r.at("oracle");
    EXPECT_EQ(o.at("samples").get<int64_t>(), 400) << m;
    EXPECT_EQ(r.at("oracle_samples").size(), 400u) << m;
    for (const char* k : {"mean", "top1"}) {
      const double v = o.at(k).get<double>();
      EXPECT_TRUE(v >= -4.0 && v <= 1.0) << m << " oracle." << k << " = " << v;
    }
    EXPECT_GE(o.at("top1").get<double>(), o.at("mean").get<double>()) << m;
    for (const char* k : {"harmful_rate", "exact_rate"}) {
      const double v = o.at(k).get<double>();
      EXPECT_TRUE(v >= 0.0 && v <= 1.0) << m << " oracle." << k << " = " << v;
    }
    EXPECT_EQ(r.at("reward").at("samples").get<int64_t>(), 400) << m;
    EXPECT_TRUE(std::isfinite(r.at("bleu").at("sacrebleu_corpus").get<double>())) << m;
    EXPECT_EQ(r.at("margins").at("pairs").get<int64_t>(), 100) << m;
    EXPECT_TRUE(std::isfinite(r.at("margins").at("rm_dpo").get<double>())) << m;
    EXPECT_EQ(r.at("margins_hardest").at("pairs").get<int64_t>(), 100) << m;
    EXPECT_TRUE(std::isfinite(r.at("kl_winning").at("mean").get<double>())) << m;
    EXPECT_DOUBLE_EQ(r.at("training").at("responses_per_prompt").get<double>(), fwd) << m;
    EXPECT_GT(r.at("training").at("seconds").get<double>(), 0.0) << m;
    if (m != "sft") EXPECT_EQ(r.at("win_rate").at("prompts").get<int64_t>(), 100) << m;
  }
  // Annotation keeps each distinct response once per prompt (generate.distinct), every one scored.
  io::for_each_jsonl(run + "/annotate/ranked.jsonl", [&](int64_t line, const nlohmann::json& j) {
    auto ys = j.at("responses").get<std::vector<std::string>>();
    EXPECT_EQ(j.at("rewards").size(), ys.size()) << line;
    std::sort(ys.begin(), ys.end());
    EXPECT_EQ(std::adjacent_find(ys.begin(), ys.end()), ys.end()) << "duplicate response at line " << line;
  });
  // Every generation line is scored and carries its source line.
  int64_t lines = 0;
  io::for_each_jsonl(run + "/eval_hps/generations.jsonl", [&](int64_t, const nlohmann::json& j) {
    ++lines;
    EXPECT_EQ(j.at("responses").size(), 4u);
    EXPECT_EQ(j.at("rewards").size(), 4u);
    EXPECT_TRUE(j.contains("source_line"));
  });
  EXPECT_EQ(lines, 100);

  const std::string md = io::read_file(run + "/report/report.md");
  EXPECT_NE(md.find("| method | r* (mean) | r* (top-1 of N) | harmful % |"), std::string::npos) << md;
  for (const char* row : {"| sft |", "| bt |", "| pl |", "| hps |"}) EXPECT_NE(md.find(row), std::string::npos) << row;
  EXPECT_NE(md.find("fwd / prompt | train s |"), std::string::npos);
  for (const char* svg : {"rewards.svg", "margins.svg", "oracle.svg"}) {
    const std::string s = io::read_file(run + "/report/" + svg);
    EXPECT_EQ(s.rfind("<svg", 0), 0u) << svg;
    EXPECT_NE(s.find("</svg>"), std::string::npos) << svg;
  }
}

}  // namespace
}  // namespace hps

// Generation: greedy parity with transformers' generate on the fixture models (left padding, KV cache, the
// Mistral sliding window), sampling rules (top-k / top-p exclusions, temperature → 0 = greedy, the empirical
// distribution = softmax), seeds, and n samples sharing one prefill.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "generate/engine.hpp"
#include "generate/sampler.hpp"
#include "model/load.hpp"
#include "model/model_helpers.hpp"

namespace hps::generate {
namespace {

using test::message_of;

std::vector<std::vector<int64_t>> prompts_of(const at::Tensor& ids, const at::Tensor& mask) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t i = 0; i < ids.size(0); ++i) {
    std::vector<int64_t> p;
    for (int64_t t = 0; t < ids.size(1); ++t)
      if (mask[i][t].item<int64_t>()) p.push_back(ids[i][t].item<int64_t>());
    out.push_back(p);
  }
  return out;
}

TEST(Generate, GreedyEqualsTransformersGenerate) {
  for (const std::string arch : {"llama", "qwen2", "mistral"}) {
    const auto e = test::expected(arch);
    const auto d = model::load_model(test::model_dir(arch));
    SamplingConfig c;
    c.temperature = 0;
    c.max_new_tokens = 8;
    const auto got = generate_ids(d, prompts_of(e.at("gen_prompt_ids"), e.at("gen_prompt_mask")), c, {}, 0, 0);
    for (int64_t i = 0; i < 2; ++i) {
      const at::Tensor want = e.at("gen_greedy")[i];
      ASSERT_EQ(got[static_cast<size_t>(i)][0].size(), 8u) << arch;
      for (int64_t t = 0; t < 8; ++t) EXPECT_EQ(got[static_cast<size_t>(i)][0][static_cast<size_t>(t)], want[t].item<int64_t>()) << arch << " row " << i << " token " << t;
    }
  }
}

TEST(Generate, SeedsRepeatSamplesDifferAndEosStops) {
  const auto d = model::load_model(test::model_dir("qwen2"));
  SamplingConfig c;
  c.temperature = 1.0, c.max_new_tokens = 12, c.n = 4;
  const std::vector<std::vector<int64_t>> p{{5, 6, 7}, {9, 10}};
  const auto a = generate_ids(d, p, c, {}, 0, 1), b = generate_ids(d, p, c, {}, 0, 1), x = generate_ids(d, p, c, {}, 0, 2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, x);
  ASSERT_EQ(a[0].size(), 4u);
  EXPECT_NE(a[0][0], a[0][1]) << "the n samples of a prompt are different draws";
  // With the first sampled token as EOS, that sample ends before it.
  const int64_t eos = a[0][0][0];
  const auto s = generate_ids(d, p, c, {eos}, 0, 1);
  EXPECT_TRUE(s[0][0].empty());
  for (const auto& row : s)
    for (const auto& seq : row) EXPECT_EQ(std::count(seq.begin(), seq.end(), eos), 0);
}

TEST(Sampler, TopKAndTopPNeverEmitExcludedTokens) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const at::Tensor logits = at::tensor({2.0, 1.0, 0.5, 0.0, -1.0, -3.0}, at::kFloat).view({1, 6}).repeat({2000, 1});
  SamplingConfig k;
  k.top_k = 2;
  at::Tensor draws = sample_next(logits, k, gen);
  EXPECT_TRUE((draws < 2).all().item<bool>());
  SamplingConfig p;
  p.top_p = 0.6;  // softmax: 0.52, 0.19, … → the top-2 reach 0.6
  const at::Tensor lp = sampling_logprobs(logits.narrow(0, 0, 1), p);
  EXPECT_TRUE(std::isfinite(lp[0][1].item<float>()));
  EXPECT_TRUE(std::isinf(lp[0][2].item<float>()));
  draws = sample_next(logits, p, gen);
  EXPECT_TRUE((draws < 2).all().item<bool>());
  SamplingConfig tiny;
  tiny.top_p = 1e-6;  // keeps the top token only
  EXPECT_TRUE((sample_next(logits, tiny, gen) == 0).all().item<bool>());
}

TEST(Sampler, EmpiricalDistributionMatchesSoftmaxAndColdEqualsGreedy) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const at::Tensor row = at::tensor({1.0, 0.0, -0.5, 0.3}, at::kFloat);
  const int64_t n = 40000;
  SamplingConfig c;
  c.temperature = 0.7;
  const at::Tensor draws = sample_next(row.view({1, 4}).repeat({n, 1}), c, gen);
  const at::Tensor freq = at::bincount(draws, {}, 4).to(at::kDouble) / static_cast<double>(n);
  const at::Tensor want = (row / 0.7).softmax(0).to(at::kDouble);
  // 5 standard errors of a binomial proportion.
  EXPECT_TRUE(((freq - want).abs() <= 5 * (want * (1 - want) / n).sqrt()).all().item<bool>()) << freq << want;
  SamplingConfig cold;
  cold.temperature = 1e-4;
  EXPECT_TRUE((sample_next(row.view({1, 4}).repeat({100, 1}), cold, gen) == 0).all().item<bool>());
  SamplingConfig bad;
  bad.top_p = 0;
  EXPECT_THAT(message_of<ConfigError>([&] { validate(bad); }), ::testing::HasSubstr("top_p must be in (0, 1]"));
}

}  // namespace
}  // namespace hps::generate

#include <fstream>

#include "generate/generate_file.hpp"
#include "io/atomic_file.hpp"

namespace hps::generate {
namespace {

TEST(GenerateFile, ResumeAfterACrashWritesWhatAnUninterruptedRunWrites) {
  test::TempDir dir;
  const auto j = io::read_json_file(test::fixtures_dir() + "/train/tiny_qwen2_config.json");
  const auto m = model::random_model(model::parse_model_config(j, "tiny"), at::kCPU, at::kFloat, 0.1, 4);
  const auto tok = text::Tokenizer::from_dir(test::fixtures_dir() + "/tokenizers/qwen2");
  {
    std::ofstream p(dir.str("prompts.jsonl"));
    for (int i = 0; i < 5; ++i) p << nlohmann::json{{"prompt", "Question " + std::to_string(i) + "?"}}.dump() << "\n";
  }
  GenerateJob job;
  job.data = dir.str("prompts.jsonl");
  job.sampling.n = 3, job.sampling.max_new_tokens = 10, job.sampling.temperature = 0.9, job.sampling.seed = 7;
  job.batch_prompts = 2;
  const text::ChatTemplate chat = text::detect_chat_template(tok.config().chat_template);
  std::ostringstream log;
  job.out = dir.str("full.jsonl");
  EXPECT_EQ(generate_file(m, tok, chat, job, log), 5);
  job.out = dir.str("resumed.jsonl");
  job.stop_after_prompts = 2;
  EXPECT_EQ(generate_file(m, tok, chat, job, log), 2);
  std::ofstream(job.out, std::ios::app) << "{\"prompt\": \"half a li";  // a crash mid-write
  job.stop_after_prompts = 0;
  EXPECT_EQ(generate_file(m, tok, chat, job, log), 3);
  EXPECT_THAT(log.str(), ::testing::HasSubstr("removing a partial last line"));
  EXPECT_EQ(io::read_file(dir.str("full.jsonl")), io::read_file(job.out));
  // Every line: the prompt and n decodable responses.
  std::ifstream in(job.out);
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) EXPECT_EQ(nlohmann::json::parse(line)["responses"].size(), 3u);
  EXPECT_EQ(lines, 5);
  EXPECT_EQ(generate_file(m, tok, chat, job, log), 0) << "a finished file is left alone";
}

}  // namespace
}  // namespace hps::generate

#include "data/batching.hpp"
#include "data/inspect.hpp"
#include "generate/score_file.hpp"
#include "io/jsonl.hpp"

namespace hps::generate {
namespace {

TEST(ScoreFile, WritesTheRewardModelsScoresResumesAndWorksInPlace) {
  test::TempDir dir;
  const auto j = io::read_json_file(test::fixtures_dir() + "/train/tiny_qwen2_config.json");
  auto cfg = model::parse_model_config(j, "tiny");
  cfg.architecture = "Qwen2ForSequenceClassification", cfg.head = model::Head::sequence_classification, cfg.num_labels = 1;
  const auto rm = model::random_model(cfg, at::kCPU, at::kFloat, 0.1, 5);
  const auto tok = text::Tokenizer::from_dir(test::fixtures_dir() + "/tokenizers/qwen2");
  const text::ChatTemplate chat = text::detect_chat_template(tok.config().chat_template);
  {
    std::ofstream p(dir.str("gen.jsonl"));
    for (int i = 0; i < 5; ++i)
      p << nlohmann::json{{"prompt", "Q" + std::to_string(i)}, {"responses", {"yes", "no thanks", ""}}, {"extra", i}}.dump() << "\n";
  }
  ScoreJob job{dir.str("gen.jsonl"), dir.str("scored.jsonl"), 4, 256, 2};
  std::ostringstream log;
  EXPECT_EQ(score_file(rm, tok, chat, job, log), 5);
  std::vector<nlohmann::json> scored;
  io::for_each_jsonl(job.out, [&](int64_t, const nlohmann::json& r) { scored.push_back(r); });
  ASSERT_EQ(scored.size(), 5u);
  EXPECT_EQ(scored[3]["extra"], 3) << "other fields are kept";
  ASSERT_EQ(scored[3]["rewards"].size(), 3u);
  // The score equals the reward model's on the sequence as train-rm encodes it.
  const auto ds = data::read_dataset(job.data, {data::Format::ranked, data::OnBadRecord::error, data::PkuRanking::helpful, 1, true});
  const data::Encoder enc(tok, chat, {128, 256, true});
  const auto ex = enc.encode(ds.records[3], {1});
  std::vector<int64_t> seq = ex.prompt;
  seq.insert(seq.end(), ex.responses[0].begin(), ex.responses[0].end());
  const at::Tensor ids = at::tensor(seq, at::kLong).view({1, -1});
  EXPECT_NEAR(scored[3]["rewards"][1].get<double>(), rm.scores(ids, at::ones_like(ids)).item<double>(), 1e-5);
  // Resume: an interrupted run left two scored lines and half a third.
  const std::string full = io::read_file(job.out);
  job.out = dir.str("resumed.jsonl");
  const size_t two = full.find('\n', full.find('\n') + 1) + 1;
  io::write_file_atomic(job.out + ".partial", [&](std::ostream& o) { o << full.substr(0, two) << "{\"prompt\": \"Q2"; });
  EXPECT_EQ(score_file(rm, tok, chat, job, log), 3);
  EXPECT_EQ(io::read_file(job.out), full);
  EXPECT_FALSE(io::file_exists(job.out + ".partial"));
  // In place.
  job.out = job.data;
  score_file(rm, tok, chat, job, log);
  EXPECT_EQ(io::read_file(job.data), full);
}

}  // namespace
}  // namespace hps::generate

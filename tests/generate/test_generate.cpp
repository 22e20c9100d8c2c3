// Generation: greedy parity with transformers' generate on the fixture models (left padding, KV cache, the
// Mistral sliding window), sampling rules (top-k / top-p exclusions, temperature → 0 = greedy, the empirical
// distribution = softmax), seeds, and n samples sharing one prefill.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include <nlohmann/json.hpp>
#include <set>
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

// Uniforms from torch's generator (the sampler's contract: one u ∈ (0, 1) per row), ending with the
// extremes sample_uniforms can produce, 2⁻²⁴ and 1 − 2⁻²⁴.
at::Tensor uniforms(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor u = at::rand({n}, gen).clamp(0x1.0p-24f, 1.0f - 0x1.0p-24f);
  u[n - 2] = 0x1.0p-24f, u[n - 1] = 1.0f - 0x1.0p-24f;
  return u;
}

// A sample's tokens are a function of (seed, stream id, sample index) and its prompt: the same whether its
// prompt is generated alone or in a batch with others, at any position.
TEST(Generate, ASamplesTokensDoNotDependOnItsBatch) {
  const auto d = model::load_model(test::model_dir("qwen2"));
  SamplingConfig c;
  c.temperature = 1.0, c.max_new_tokens = 10, c.n = 3;
  const std::vector<std::vector<int64_t>> p{{5, 6, 7}, {9, 10}, {11, 12, 13, 14}};
  const auto all = generate_ids(d, p, c, {}, 0, 5, 0, {20, 21, 22});
  for (size_t i = 0; i < p.size(); ++i) {
    const auto alone = generate_ids(d, {p[i]}, c, {}, 0, 5, 0, {20 + i});
    EXPECT_EQ(alone[0], all[i]) << "prompt " << i;
  }
  const auto reordered = generate_ids(d, {p[2], p[0]}, c, {}, 0, 5, 0, {22, 20});
  EXPECT_EQ(reordered[0], all[2]);
  EXPECT_EQ(reordered[1], all[0]);
  EXPECT_NE(generate_ids(d, {p[0]}, c, {}, 0, 5, 0, {21})[0], all[0]) << "another stream id, other draws";
}

// Continuous batching changes no sample: rows of ended samples leave (the cache keeps the live rows) and
// waiting prompts take their place, yet the 8 prompts in one batch, each prompt alone, and any number of rows
// in flight (1, 3, 5; with n = 4: 4, 7, 13) give the same samples.
TEST(Generate, ContinuousBatchingChangesNoSample) {
  const auto d = model::load_model(test::model_dir("qwen2"));
  SamplingConfig c;
  c.temperature = 1.0, c.max_new_tokens = 24, c.n = 1;
  const int64_t eos = 3;
  c.logit_bias = {{eos, 4.0}};  // EOS likely: samples end at very different steps
  std::vector<std::vector<int64_t>> p;
  std::vector<uint64_t> streams;
  for (int64_t i = 0; i < 8; ++i) p.push_back({5 + i, 6, 7 + 2 * i}), streams.push_back(static_cast<uint64_t>(i));
  const auto all = generate_ids(d, p, c, {eos}, 0, 9, 0, streams);
  std::set<size_t> lengths;
  for (size_t i = 0; i < p.size(); ++i) {
    lengths.insert(all[i][0].size());
    EXPECT_EQ(generate_ids(d, {p[i]}, c, {eos}, 0, 9, 0, {streams[i]})[0], all[i]) << "prompt " << i;
  }
  EXPECT_GE(lengths.size(), 4u) << "the samples ended at different steps";
  for (int64_t rows : {1, 3, 5}) EXPECT_EQ(generate_ids(d, p, c, {eos}, 0, 9, 0, streams, rows), all) << rows << " rows";
  c.n = 4;  // and the n samples of one prompt, alone or among others
  const auto many = generate_ids(d, p, c, {eos}, 0, 9, 0, streams);
  EXPECT_EQ(generate_ids(d, {p[5]}, c, {eos}, 0, 9, 0, {streams[5]})[0], many[5]);
  for (int64_t rows : {4, 7, 13}) EXPECT_EQ(generate_ids(d, p, c, {eos}, 0, 9, 0, streams, rows), many) << rows << " rows";
}

// One prompt cache per prompt (model/prefix_cache.hpp, on by default) changes no sample: sampled and greedy,
// rows that leave (EOS likely) and waiting prompts that join (5 rows in flight), every architecture (mistral's
// window of 5 reaches back into the prompts) — the tokens a copy of the prompt per sample gives.
TEST(Generate, SharedPromptCacheChangesNoSample) {
  const int64_t eos = 3;
  std::vector<std::vector<int64_t>> p;
  std::vector<uint64_t> streams;
  for (int64_t i = 0; i < 6; ++i) {
    std::vector<int64_t> prompt;
    for (int64_t t = 0; t < 2 + 2 * i; ++t) prompt.push_back(5 + (7 * i + 3 * t) % 40);
    p.push_back(prompt), streams.push_back(static_cast<uint64_t>(i));
  }
  for (const std::string arch : {"llama", "qwen2", "mistral"}) {
    const auto d = model::load_model(test::model_dir(arch));
    SamplingConfig c;
    c.max_new_tokens = 16, c.n = 3;
    c.logit_bias = {{eos, 3.0}};
    for (double temperature : {1.0, 0.0})
      for (int64_t rows : {0, 5}) {
        c.temperature = temperature;
        const auto shared = generate_ids(d, p, c, {eos}, 0, 9, 0, streams, rows, true);
        EXPECT_EQ(shared, generate_ids(d, p, c, {eos}, 0, 9, 0, streams, rows, false))
            << arch << " temperature " << temperature << " rows " << rows;
      }
  }
}

TEST(Sampler, TopKAndTopPNeverEmitExcludedTokens) {
  const at::Tensor logits = at::tensor({2.0, 1.0, 0.5, 0.0, -1.0, -3.0}, at::kFloat).view({1, 6}).repeat({2000, 1});
  SamplingConfig k;
  k.top_k = 2;
  at::Tensor draws = sample_next(logits, k, uniforms(2000, 0));
  EXPECT_TRUE((draws < 2).all().item<bool>());
  SamplingConfig p;
  p.top_p = 0.6;  // softmax: 0.52, 0.19, … → the top-2 reach 0.6
  const at::Tensor lp = sampling_logprobs(logits.narrow(0, 0, 1), p);
  EXPECT_TRUE(std::isfinite(lp[0][1].item<float>()));
  EXPECT_TRUE(std::isinf(lp[0][2].item<float>()));
  draws = sample_next(logits, p, uniforms(2000, 1));
  EXPECT_TRUE((draws < 2).all().item<bool>());
  SamplingConfig tiny;
  tiny.top_p = 1e-6;  // keeps the top token only
  EXPECT_TRUE((sample_next(logits, tiny, uniforms(2000, 2)) == 0).all().item<bool>());
}

// logit_bias (OpenAI / vLLM): added before temperature, for sampling and greedy alike.
TEST(Sampler, LogitBiasBansOrForcesTokens) {
  const at::Tensor logits = at::tensor({2.0, 1.0, 0.5, 0.0}, at::kFloat).view({1, 4}).repeat({500, 1});
  SamplingConfig c;
  c.logit_bias = {{0, -100.0}};
  EXPECT_TRUE((sample_next(logits, c, uniforms(500, 5)) != 0).all().item<bool>()) << "a banned token is never drawn";
  c.logit_bias = {{3, 100.0}};
  EXPECT_TRUE((sample_next(logits, c, uniforms(500, 6)) == 3).all().item<bool>());
  c.temperature = 0;
  EXPECT_TRUE((sample_next(logits, c, uniforms(500, 7)) == 3).all().item<bool>()) << "greedy sees the bias too";
  c.logit_bias = {{4, 1.0}};
  EXPECT_THAT(message_of<ConfigError>([&] { sample_next(logits, c, uniforms(500, 8)); }), ::testing::HasSubstr("past the vocabulary"));
  EXPECT_EQ(parse_logit_bias("7=-100"), (std::pair<int64_t, double>{7, -100.0}));
  EXPECT_THAT(message_of<ConfigError>([] { parse_logit_bias("7:-1"); }), ::testing::HasSubstr("TOKEN_ID=BIAS"));
  EXPECT_THAT(message_of<ConfigError>([] { parse_logit_bias("x=1"); }), ::testing::HasSubstr("TOKEN_ID=BIAS"));
}

TEST(Sampler, EmpiricalDistributionMatchesSoftmaxAndColdEqualsGreedy) {
  const at::Tensor row = at::tensor({1.0, 0.0, -0.5, 0.3}, at::kFloat);
  const int64_t n = 40000;
  SamplingConfig c;
  c.temperature = 0.7;
  // the engine's own uniforms: one stream per row
  std::vector<uint64_t> streams(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) streams[static_cast<size_t>(i)] = static_cast<uint64_t>(i);
  const at::Tensor u = sample_uniforms(3, streams, 1, 1).select(1, 0);
  EXPECT_TRUE(((u > 0) & (u < 1)).all().item<bool>());
  const at::Tensor draws = sample_next(row.view({1, 4}).repeat({n, 1}), c, u);
  const at::Tensor freq = at::bincount(draws, {}, 4).to(at::kDouble) / static_cast<double>(n);
  const at::Tensor want = (row / 0.7).softmax(0).to(at::kDouble);
  // 5 standard errors of a binomial proportion.
  EXPECT_TRUE(((freq - want).abs() <= 5 * (want * (1 - want) / n).sqrt()).all().item<bool>()) << freq << want;
  SamplingConfig cold;
  cold.temperature = 1e-4;
  EXPECT_TRUE((sample_next(row.view({1, 4}).repeat({100, 1}), cold, uniforms(100, 4)) == 0).all().item<bool>());
  SamplingConfig bad;
  bad.top_p = 0;
  EXPECT_THAT(message_of<ConfigError>([&] { validate(bad); }), ::testing::HasSubstr("top_p must be in (0, 1]"));
}

}  // namespace
}  // namespace hps::generate

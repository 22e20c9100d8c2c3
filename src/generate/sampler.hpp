// Next-token sampling from logits: greedy, temperature, top-k, top-p (nucleus), seeded — the rules of
// transformers' sampling warpers (top-k keeps the k largest; top-p keeps the smallest set whose probability
// reaches p, always at least the top token).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hps::generate {

struct SamplingConfig {
  double temperature = 1.0;  // 0 = greedy
  double top_p = 1.0;
  int64_t top_k = 0;         // 0 = off
  int64_t max_new_tokens = 256;
  int64_t n = 1;             // samples per prompt
  uint64_t seed = 0;
  std::vector<std::string> stop;  // stop strings (cut from the decoded text)
  // Added to a token's logit before temperature and the filters (OpenAI's / vLLM's logit_bias, HF's
  // sequence_bias for one-token sequences): -100 all but bans a token, +5 makes it far likelier.
  std::vector<std::pair<int64_t, double>> logit_bias;
};

// "ID=BIAS" (the CLI's --logit-bias); ConfigError naming the expected form.
std::pair<int64_t, double> parse_logit_bias(const std::string& s);

// Throws ConfigError naming the field for values out of range.
void validate(const SamplingConfig& c);

// The log-probabilities the sampler draws from after temperature, top-k and top-p: [B, V] fp32, −inf on
// excluded tokens. Exposed for tests.
at::Tensor sampling_logprobs(const at::Tensor& logits, const SamplingConfig& c);

// One token per row: argmax when temperature is 0, else the inverse-CDF draw of sampling_logprobs at the
// row's uniform u ∈ (0, 1): the first token whose cumulative probability exceeds u · (total mass). A row's
// token depends on its logits and its u only — not on the other rows of the batch — and a token of zero
// probability (excluded by top-k / top-p) is never drawn.
at::Tensor sample_next(const at::Tensor& logits, const SamplingConfig& c, const at::Tensor& u);  // u: [B] → [B] int64

// The uniforms of sample j of the prompt whose stream id is s, at steps 0..steps-1: SplitMix64 of
// (seed, s, j, t), so a sample's random stream is a function of (seed, prompt, sample index) and the file
// `hps generate` writes is the same for any batch size, resume point or process count.
at::Tensor sample_uniforms(uint64_t seed, const std::vector<uint64_t>& streams, int64_t n, int64_t steps);  // [S·n, steps] fp32

}  // namespace hps::generate

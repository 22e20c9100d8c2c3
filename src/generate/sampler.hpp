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
};

// Throws ConfigError naming the field for values out of range.
void validate(const SamplingConfig& c);

// The log-probabilities the sampler draws from after temperature, top-k and top-p: [B, V] fp32, −inf on
// excluded tokens. Exposed for tests.
at::Tensor sampling_logprobs(const at::Tensor& logits, const SamplingConfig& c);

// One token per row: argmax when temperature is 0, else a draw from sampling_logprobs with `gen`, a
// generator of the logits' device.
at::Tensor sample_next(const at::Tensor& logits, const SamplingConfig& c, at::Generator& gen);  // [B] int64

}  // namespace hps::generate

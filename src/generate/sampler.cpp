#include "generate/sampler.hpp"

#include <limits>

#include "core/error.hpp"

namespace hps::generate {

void validate(const SamplingConfig& c) {
  if (c.temperature < 0) throw ConfigError("temperature must be >= 0 (0 = greedy), found " + std::to_string(c.temperature));
  if (c.top_p <= 0 || c.top_p > 1) throw ConfigError("top_p must be in (0, 1], found " + std::to_string(c.top_p));
  if (c.top_k < 0) throw ConfigError("top_k must be >= 0 (0 = off), found " + std::to_string(c.top_k));
  if (c.max_new_tokens <= 0) throw ConfigError("max_new_tokens must be > 0");
  if (c.n <= 0) throw ConfigError("n (samples per prompt) must be > 0");
}

at::Tensor sampling_logprobs(const at::Tensor& logits, const SamplingConfig& c) {
  const double neg = -std::numeric_limits<double>::infinity();
  at::Tensor x = logits.to(at::kFloat) / (c.temperature > 0 ? c.temperature : 1.0);  // [B, V]
  const int64_t V = x.size(1);
  if (c.top_k > 0 && c.top_k < V) {
    const at::Tensor kth = std::get<0>(x.topk(c.top_k, 1)).select(1, c.top_k - 1).unsqueeze(1);  // [B, 1]
    x = x.masked_fill(x < kth, neg);
  }
  if (c.top_p < 1.0) {
    auto [sorted, idx] = x.sort(1, /*descending=*/true);
    const at::Tensor probs = sorted.softmax(1);
    // Drop a token when the mass before it already reaches p (so the top token always stays).
    const at::Tensor before = probs.cumsum(1) - probs;
    const at::Tensor drop_sorted = before >= c.top_p;
    const at::Tensor drop = at::zeros_like(drop_sorted).scatter(1, idx, drop_sorted);
    x = x.masked_fill(drop, neg);
  }
  return x.log_softmax(1);
}

at::Tensor sample_next(const at::Tensor& logits, const SamplingConfig& c, at::Generator& gen) {
  if (c.temperature == 0) return logits.argmax(1);
  // Drawn on the logits' device with a generator of that device (the engine seeds it).
  return at::multinomial(sampling_logprobs(logits, c).exp(), 1, /*replacement=*/false, gen).squeeze(1);
}

}  // namespace hps::generate

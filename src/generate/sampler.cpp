#include "generate/sampler.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/error.hpp"
#include "core/seed.hpp"

namespace hps::generate {

void validate(const SamplingConfig& c) {
  if (c.temperature < 0) throw ConfigError("temperature must be >= 0 (0 = greedy), found " + std::to_string(c.temperature));
  if (c.top_p <= 0 || c.top_p > 1) throw ConfigError("top_p must be in (0, 1], found " + std::to_string(c.top_p));
  if (c.top_k < 0) throw ConfigError("top_k must be >= 0 (0 = off), found " + std::to_string(c.top_k));
  if (c.max_new_tokens <= 0) throw ConfigError("max_new_tokens must be > 0");
  if (c.n <= 0) throw ConfigError("n (samples per prompt) must be > 0");
  for (const auto& [id, b] : c.logit_bias)
    if (id < 0 || !std::isfinite(b))
      throw ConfigError("logit_bias: token id " + std::to_string(id) + " bias " + std::to_string(b) +
                        " (expected an id >= 0 and a finite bias)");
}

std::pair<int64_t, double> parse_logit_bias(const std::string& s) {
  const size_t eq = s.find('=');
  try {
    size_t used = 0;
    if (eq == std::string::npos) throw std::invalid_argument("no '='");
    const int64_t id = std::stoll(s.substr(0, eq), &used);
    if (used != eq) throw std::invalid_argument("id");
    const std::string b = s.substr(eq + 1);
    const double bias = std::stod(b, &used);
    if (used != b.size()) throw std::invalid_argument("bias");
    return {id, bias};
  } catch (const std::exception&) {
    throw ConfigError("--logit-bias '" + s + "': expected TOKEN_ID=BIAS, e.g. 2=-100");
  }
}

namespace {

// The logits in fp32 with the configured biases added: [B, V].
at::Tensor biased(const at::Tensor& logits, const SamplingConfig& c) {
  at::Tensor x = logits.to(at::kFloat);
  if (c.logit_bias.empty()) return x;
  std::vector<int64_t> ids;
  std::vector<float> bias;
  for (const auto& [id, b] : c.logit_bias) {
    if (id >= x.size(1))
      throw ConfigError("logit_bias: token id " + std::to_string(id) + " is past the vocabulary (" + std::to_string(x.size(1)) + ")");
    ids.push_back(id), bias.push_back(static_cast<float>(b));
  }
  // The biased columns only (a repeated id adds up), out of place: x may be the caller's logits.
  const at::Tensor src = at::tensor(bias, at::kFloat).to(x.device()).unsqueeze(0).expand({x.size(0), -1});  // [B, k]
  return at::index_add(x, 1, at::tensor(ids, at::kLong).to(x.device()), src);
}

}  // namespace

at::Tensor sampling_logprobs(const at::Tensor& logits, const SamplingConfig& c) {
  const double neg = -std::numeric_limits<double>::infinity();
  at::Tensor x = biased(logits, c) / (c.temperature > 0 ? c.temperature : 1.0);  // [B, V]
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

at::Tensor sample_next(const at::Tensor& logits, const SamplingConfig& c, const at::Tensor& u) {
  if (c.temperature == 0) return biased(logits, c).argmax(1);
  const at::Tensor cdf = sampling_logprobs(logits, c).exp().cumsum(1);  // cdf: [B, V]
  const at::Tensor total = cdf.narrow(1, cdf.size(1) - 1, 1);           // total: [B, 1]
  const at::Tensor target = u.to(cdf.device(), at::kFloat).unsqueeze(1) * total;
  // right=True: the first index whose cdf exceeds the target; a zero-probability token repeats its
  // predecessor's cdf, so it is never that index. Should rounding put the target at the total, the draw is
  // the token that reached the total (the last one with probability), never one past it.
  const at::Tensor first = at::searchsorted(cdf, target, /*out_int32=*/false, /*right=*/true).squeeze(1);
  return at::minimum(first, (cdf < total).sum(1));
}

at::Tensor sample_uniforms(uint64_t seed, const std::vector<uint64_t>& streams, int64_t n, int64_t steps) {
  at::Tensor u = at::empty({static_cast<int64_t>(streams.size()) * n, steps}, at::kFloat);  // u: [S·n, steps]
  float* p = u.data_ptr<float>();
  for (size_t s = 0; s < streams.size(); ++s)
    for (int64_t j = 0; j < n; ++j) {
      const uint64_t sample = derive_seed(derive_seed(seed, SeedPurpose::generation_sample, streams[s]), SeedPurpose::generation_sample,
                                          static_cast<uint64_t>(j));
      for (int64_t t = 0; t < steps; ++t) {
        const uint64_t bits = derive_seed(sample, SeedPurpose::generation_sample, static_cast<uint64_t>(t));
        // (k + ½)·2⁻²³ for a 23-bit k: exact in a float, strictly inside (0, 1) — u = 0 would draw the first
        // token of any positive mass, however small (a −100 logit_bias would not ban it).
        *p++ = static_cast<float>((static_cast<double>(bits >> 41) + 0.5) * 0x1.0p-23);
      }
    }
  return u;
}

}  // namespace hps::generate

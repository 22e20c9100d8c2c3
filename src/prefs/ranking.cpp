#include "prefs/ranking.hpp"

#include <array>
#include <cmath>
#include <limits>
#include <sstream>

#include "core/error.hpp"

namespace hps::prefs {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

std::string shape_str(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

// First (b, k) where `bad` is set, as "prompt b, slot k"; bad: [B, K] bool.
std::string first_position(const at::Tensor& bad) {
  auto idx = bad.nonzero().to(at::kCPU);
  std::ostringstream os;
  os << "prompt " << idx[0][0].item<int64_t>() << ", slot " << idx[0][1].item<int64_t>();
  return os.str();
}

void check_field(const at::Tensor& t, const char* name, const at::Tensor& like, bool floating) {
  if (!t.defined()) throw InputError(std::string("preference batch: field '") + name + "' is missing");
  if (t.sizes() != like.sizes())
    throw InputError(std::string("preference batch: field '") + name + "' has shape " + shape_str(t) +
                     ", expected " + shape_str(like) + " (the shape of policy_logp)");
  if (floating && !at::isFloatingType(t.scalar_type()))
    throw InputError(std::string("preference batch: field '") + name + "' must be floating point, got " +
                     std::string(c10::toString(t.scalar_type())));
}


}  // namespace

Ranked rank_responses(const PrefBatch& batch, int64_t min_responses) {
  const auto& lp = batch.policy_logp;
  if (!lp.defined()) throw InputError("preference batch: field 'policy_logp' is missing");
  if (lp.dim() != 2 || lp.size(0) < 1 || lp.size(1) < 1)
    throw InputError("preference batch: policy_logp must be [B, K] with B, K ≥ 1, got shape " + shape_str(lp));
  check_field(lp, "policy_logp", lp, true);
  if (batch.ref_logp.defined()) check_field(batch.ref_logp, "ref_logp", lp, true);
  check_field(batch.length, "length", lp, false);
  check_field(batch.reward, "reward", lp, true);

  at::Tensor valid = batch.valid.defined() ? batch.valid : at::ones_like(lp, lp.options().dtype(at::kBool));
  check_field(valid, "valid", lp, false);
  if (valid.scalar_type() != at::kBool)
    throw InputError("preference batch: field 'valid' must be bool, got " + std::string(c10::toString(valid.scalar_type())));

  // Loss math in float64 for float64 input, float32 otherwise (fp16/bf16 log-probs are promoted).
  const auto dtype = lp.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor logp = lp.to(dtype);
  at::Tensor ref = batch.ref_logp.defined() ? batch.ref_logp.to(dtype) : at::zeros_like(logp);
  at::Tensor length = batch.length.to(dtype);
  at::Tensor reward = batch.reward.detach().to(dtype);  // annotations: never differentiated

  // Every value rule, checked with one device-to-host copy (this runs on every training step); the
  // offending position is located only when a rule fails.
  const std::array<std::pair<const char*, at::Tensor>, 4> finite_fields{
      {{"policy_logp", logp}, {"ref_logp", ref}, {"reward", reward}, {"length", length}}};
  std::vector<at::Tensor> bad;
  for (const auto& [name, t] : finite_fields) bad.push_back(valid & ~at::isfinite(t));  // [B, K] each
  bad.push_back(valid & (length < 1));
  at::Tensor count = valid.sum(1);  // [B]
  at::Tensor few = count < min_responses;
  std::vector<at::Tensor> flags;
  for (const auto& m : bad) flags.push_back(m.any());
  flags.push_back(few.any());
  const at::Tensor failed = at::stack(flags).to(at::kCPU);
  const bool* f = failed.data_ptr<bool>();
  for (size_t i = 0; i < finite_fields.size(); ++i)
    if (f[i])
      throw NumericError(std::string("preference batch: field '") + finite_fields[i].first + "' is not finite at " +
                         first_position(bad[i]) + " (rule: every valid response needs finite values)");
  if (f[4])
    throw InputError("preference batch: field 'length' is below 1 at " + first_position(bad[4]) +
                     " (rule: a response has at least one token)");
  if (f[5]) {
    const int64_t b = few.nonzero().to(at::kCPU)[0][0].item<int64_t>();
    throw InputError("preference batch: prompt " + std::to_string(b) + " has " +
                     std::to_string(count[b].item<int64_t>()) + " valid response(s); this loss needs at least " +
                     std::to_string(min_responses) + " (K = 1 gives no preference)");
  }

  // Stable descending sort: ties keep the lower slot first; invalid slots (−inf) go last.
  at::Tensor key = at::where(valid, reward, at::full({}, kNegInf, reward.options()));
  at::Tensor order = std::get<1>(at::sort(key, /*stable=*/true, /*dim=*/1, /*descending=*/true));  // [B, K]

  Ranked r;
  r.order = order;
  r.valid = valid.gather(1, order);
  r.count = count;
  auto zero = at::zeros({}, logp.options());
  r.logp = at::where(r.valid, logp.gather(1, order), zero);
  r.ref = at::where(r.valid, ref.gather(1, order), zero);
  r.length = at::where(r.valid, length.gather(1, order), at::ones({}, logp.options()));
  r.reward = at::where(r.valid, reward.gather(1, order), zero);
  return r;
}

at::Tensor masked_logsumexp(const at::Tensor& x, const at::Tensor& mask, int64_t dim) {
  auto neg_inf = at::full({}, kNegInf, x.options());
  at::Tensor xm = at::where(mask, x, neg_inf);
  at::Tensor m = std::get<0>(xm.max(dim, /*keepdim=*/true)).detach();
  m = at::where(at::isfinite(m), m, at::zeros({}, x.options()));
  at::Tensor s = at::exp(xm - m).sum(dim, /*keepdim=*/true);
  s = at::where(mask.any(dim, /*keepdim=*/true), s, at::ones({}, x.options()));
  return (m + at::log(s)).squeeze(dim);
}

at::Tensor hard_negative_log_q(const Ranked& r, double gamma, int64_t anchor) {
  // eq. (9): q(x, y) = e^{γ r_est(x,y)} / Σ_{i>anchor} e^{γ r_est(x,y_τ(i))}, over the dispreferred ranks.
  const int64_t K = r.order.size(1);
  auto pos = at::arange(K, r.order.options()).unsqueeze(0);           // [1, K]
  at::Tensor support = r.valid & (pos > anchor);                       // [B, K]
  at::Tensor logits = r.reward * gamma;                                // [B, K]
  at::Tensor lse = masked_logsumexp(logits, support, 1).unsqueeze(1);  // [B, 1]
  return at::where(support, logits - lse, at::full({}, kNegInf, logits.options()));
}

at::Tensor draw_uniforms(int64_t batch, at::Generator& gen) {
  return at::rand({batch, 2}, gen, at::TensorOptions().dtype(at::kDouble));
}

at::Tensor sample_categorical(const at::Tensor& log_q, const at::Tensor& u) {
  // Inverse CDF on the CPU in float64: the smallest position j with u < CDF_j, never one with q_j = 0.
  at::Tensor q = at::exp(log_q.detach().to(at::kCPU, at::kDouble));  // [B, K]
  at::Tensor uc = u.to(at::kCPU, at::kDouble).reshape({-1, 1});      // [B, 1]
  if (uc.size(0) != q.size(0)) throw InputError("sample_categorical: need one draw per prompt");
  at::Tensor cdf = q.cumsum(1);
  at::Tensor idx = (cdf <= uc).sum(1);                                  // [B]
  auto pos = at::arange(q.size(1), at::TensorOptions().dtype(at::kLong)).unsqueeze(0);
  at::Tensor last = at::where(q > 0, pos, at::zeros_like(pos)).amax(1);  // guards rounding at the top
  return at::minimum(idx, last).to(log_q.device());
}

std::pair<at::Tensor, at::Tensor> bt_pair(const Ranked& r, PairRule rule, const at::Tensor& u) {
  const auto dev = r.order.device();
  at::Tensor n = r.count.to(at::kCPU);  // [B]
  at::Tensor zero = at::zeros_like(n);
  at::Tensor w, l;
  auto need_draws = [&] {
    if (!u.defined() || u.dim() != 2 || u.size(0) != n.size(0) || u.size(1) < 2)
      throw InputError("BT pair rule '" + std::string(to_string(rule)) + "' needs draws of shape [B, 2]");
    return u.to(at::kCPU, at::kDouble);
  };
  switch (rule) {
    case PairRule::max_min: w = zero; l = n - 1; break;
    case PairRule::max_max: w = zero; l = zero + 1; break;
    case PairRule::max_random: {
      auto uc = need_draws();
      w = zero;
      l = at::minimum(1 + at::floor(uc.select(1, 0) * (n - 1).to(at::kDouble)).to(at::kLong), n - 1);
      break;
    }
    case PairRule::random: {
      auto uc = need_draws();
      auto i = at::minimum(at::floor(uc.select(1, 0) * n.to(at::kDouble)).to(at::kLong), n - 1);
      auto j = at::minimum(at::floor(uc.select(1, 1) * (n - 1).to(at::kDouble)).to(at::kLong), n - 2);
      j = j + (j >= i).to(at::kLong);  // a second, distinct position
      w = at::minimum(i, j);
      l = at::maximum(i, j);
      break;
    }
  }
  return {w.to(dev), l.to(dev)};
}

at::Tensor at_rank(const at::Tensor& x, const at::Tensor& idx) {
  return x.gather(1, idx.unsqueeze(1)).squeeze(1);
}

}  // namespace hps::prefs

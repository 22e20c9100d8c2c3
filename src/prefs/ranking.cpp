#include "prefs/ranking.hpp"

#include <array>
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

Ranked rank_features(const PrefBatch& batch, const at::Tensor& order, const at::Tensor& valid_ranked) {
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
  if (batch.forwarded.defined()) {
    check_field(batch.forwarded, "forwarded", lp, false);
    if (batch.forwarded.scalar_type() != at::kBool) throw InputError("preference batch: field 'forwarded' must be bool");
  }
  if (order.sizes() != lp.sizes())
    throw InputError("preference batch: the selection has shape " + shape_str(order) + ", the batch " + shape_str(lp));

  // Loss math in float64 for float64 input, float32 otherwise (fp16/bf16 log-probs are promoted).
  const auto dtype = lp.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor logp = lp.to(dtype);
  at::Tensor ref = batch.ref_logp.defined() ? batch.ref_logp.to(dtype) : at::zeros_like(logp);
  at::Tensor length = batch.length.to(dtype);

  // Every value rule, checked with one device-to-host copy (this runs on every training step); the
  // offending position is located only when a rule fails.
  const std::array<std::pair<const char*, at::Tensor>, 3> finite_fields{
      {{"policy_logp", logp}, {"ref_logp", ref}, {"length", length}}};
  std::vector<at::Tensor> bad;
  for (const auto& [name, t] : finite_fields) bad.push_back(valid & ~at::isfinite(t));  // [B, K] each
  bad.push_back(valid & (length < 1));
  std::vector<at::Tensor> flags;
  for (const auto& m : bad) flags.push_back(m.any());
  const at::Tensor failed = at::stack(flags).to(at::kCPU);
  const bool* f = failed.data_ptr<bool>();
  for (size_t i = 0; i < finite_fields.size(); ++i)
    if (f[i])
      throw NumericError(std::string("preference batch: field '") + finite_fields[i].first + "' is not finite at " +
                         first_position(bad[i]) + " (rule: every valid response needs finite values)");
  if (f[3])
    throw InputError("preference batch: field 'length' is below 1 at " + first_position(bad[3]) +
                     " (rule: a response has at least one token)");

  const at::Tensor ord = order.to(lp.device()), vr = valid_ranked.to(lp.device());
  auto zero = at::zeros({}, logp.options());
  Ranked r;
  r.logp = at::where(vr, logp.gather(1, ord), zero);
  r.ref = at::where(vr, ref.gather(1, ord), zero);
  r.length = at::where(vr, length.gather(1, ord), at::ones({}, logp.options()));
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

at::Tensor draw_uniforms(int64_t batch, at::Generator& gen) {
  return at::rand({batch, 2}, gen, at::TensorOptions().dtype(at::kDouble));
}

at::Tensor at_rank(const at::Tensor& x, const at::Tensor& idx) {
  return x.gather(1, idx.unsqueeze(1)).squeeze(1);
}

}  // namespace hps::prefs

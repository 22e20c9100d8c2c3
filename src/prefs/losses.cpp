#include "prefs/losses.hpp"

#include <cmath>

#include "core/error.hpp"
#include "prefs/objectives.hpp"

namespace hps::prefs {
namespace {

// Rank positions filled with value v: [B] int64 on the batch's device.
at::Tensor positions(const Ranked& r, int64_t v) { return at::full_like(r.count, v); }

// Plackett-Luce. DPO: eq. (4)-(5), Σ_j [log Σ_{k≥j} e^{u_k} − u_j]; with label smoothing ε the
// ranking is reversed with probability ε (reduces to cDPO for K = 2). EXO and NCA: their own K-way
// forms. IPO, SPPO, SimPO, R-DPO: the mean of ℓ over the n(n−1)/2 ordered pairs of the ranking.
at::Tensor pl_loss(const LossConfig& c, const Ranked& r, const Responses& all) {
  const int64_t K = r.order.size(1);
  auto pos = at::arange(K, r.order.options());
  at::Tensor V = r.valid;                                   // [B, K]
  at::Tensor n = r.count.to(r.logp.scalar_type());          // [B]
  at::Tensor Vk = V.unsqueeze(1);                           // [B, 1, K] over k
  at::Tensor Vj = V.unsqueeze(2);                           // [B, K, 1] over j
  at::Tensor k_ge_j = pos.unsqueeze(0) >= pos.unsqueeze(1);  // [K, K] (j, k): k ≥ j

  switch (c.objective) {
    case Objective::dpo: {
      at::Tensor u = implicit_score(c, all);                       // [B, K]
      at::Tensor U = u.unsqueeze(1).expand({-1, K, -1});           // [B, K(j), K(k)]
      at::Tensor fwd = masked_logsumexp(U, Vk & k_ge_j, 2) - u;    // [B, K] L_j of eq. (5)
      at::Tensor per = at::where(V, fwd, at::zeros_like(fwd)).sum(1);
      if (c.label_smoothing == 0.0) return per;
      at::Tensor k_le_j = pos.unsqueeze(0) <= pos.unsqueeze(1);
      at::Tensor rev = masked_logsumexp(U, Vk & k_le_j, 2) - u;    // the reversed ranking's L_j
      at::Tensor per_rev = at::where(V, rev, at::zeros_like(rev)).sum(1);
      const double e = c.label_smoothing;
      if (c.robust) return ((1 - e) * per - e * per_rev) / (1 - 2 * e);
      return (1 - e) * per + e * per_rev;
    }
    case Objective::exo: {
      // EXO (Ji et al. 2024): KL(p_θ ‖ p_label) over the K responses, p_θ = softmax(u). The pair form's
      // label (1 − ε, ε) is a reward gap log((1 − ε)/ε) between ranks; applied per rank step:
      // p_label(j) ∝ (ε/(1 − ε))^j for rank position j = 0 … n − 1.
      at::Tensor u = implicit_score(c, all);
      at::Tensor logp = u - masked_logsumexp(u, V, 1).unsqueeze(1);
      const double e = c.exo_epsilon;
      at::Tensor t = pos.to(u.scalar_type()).unsqueeze(0) * (std::log(e) - std::log1p(-e)) + at::zeros_like(u);
      at::Tensor log_label = t - masked_logsumexp(t, V, 1).unsqueeze(1);
      at::Tensor kl = at::exp(logp) * (logp - log_label);
      return at::where(V, kl, at::zeros_like(kl)).sum(1);
    }
    case Objective::nca: {
      // NCA (Chen et al. 2024) K-way: −Σ_j p_label(j) log σ(u_j) − (1/n) Σ_j log σ(−u_j), with the
      // label one-hot on y_τ(1) (the α → 0 limit of NCA's softmax(r/α) target; its pair form).
      at::Tensor u = implicit_score(c, all);
      at::Tensor neg = at::where(V, at::log_sigmoid(-u), at::zeros_like(u)).sum(1) / n;
      return -at::log_sigmoid(u.select(1, 0)) - neg;
    }
    default: {
      // preferred = rank i: [B, K, 1]; dispreferred = rank j: [B, 1, K]
      at::Tensor pl = pair_loss(c, unsqueeze(all, 2), unsqueeze(all, 1));  // [B, K, K]
      at::Tensor mask = Vj & Vk & (pos.unsqueeze(0) > pos.unsqueeze(1));   // i < j
      at::Tensor sum = at::where(mask, pl, at::zeros_like(pl)).sum({1, 2});
      return sum / (n * (n - 1) / 2);
    }
  }
}

// One HPS term with anchor rank a (a = 0: eq. (8)-(10); a = 1: L2 of Appendix E): the anchor against
// the responses ranked below it, weighted by q ∝ e^{γ r_est}. Sampled: one negative y ~ q from draw u.
// DPO uses the paper's form −log( e^{u_a} / (e^{u_a} + N·Σ q_i e^{u_i}) ) = −log σ(u_a − log(N Σ q_i e^{u_i}));
// the other parameterizations use Σ q_i ℓ(y_a, y_i) (full) or ℓ(y_a, y) (sampled).
at::Tensor hps_term(const LossConfig& c, const Ranked& r, const Responses& all, int64_t a, const at::Tensor& u,
                    at::Tensor& negative) {
  at::Tensor log_q = hard_negative_log_q(r, c.gamma, a);  // [B, K], −inf off the negatives
  const bool sampled = c.preference == Preference::hps;
  negative = sampled ? sample_categorical(log_q, u) : positions(r, a + 1);
  at::Tensor anchor = positions(r, a);
  at::Tensor log_n = c.n_factor == NFactor::n ? at::log((r.count - 1 - a).to(r.logp.scalar_type()))
                                              : at::zeros_like(r.logp.select(1, 0));  // [B]
  if (c.objective == Objective::dpo) {
    at::Tensor s = implicit_score(c, all);  // [B, K]
    at::Tensor soft_neg = sampled ? at_rank(s, negative)                                    // single-sample estimate
                                  : masked_logsumexp(s + log_q, at::isfinite(log_q), 1);  // log Σ q_i e^{u_i}
    return sigmoid_link(c, at_rank(s, anchor) - soft_neg - log_n);
  }
  if (sampled) return pair_loss(c, at_rank(all, anchor), at_rank(all, negative));
  at::Tensor l = pair_loss(c, unsqueeze(at_rank(all, anchor), 1), all);  // [B, K]
  return (at::exp(log_q) * l).sum(1);
}

}  // namespace

bool is_stochastic(const LossConfig& c) {
  return c.preference == Preference::hps ||
         (c.preference == Preference::bt && (c.pair_rule == PairRule::max_random || c.pair_rule == PairRule::random));
}

LossResult preference_loss(const PrefBatch& batch, const LossConfig& c, const at::Tensor& draws) {
  validate(c);
  if (!batch.ref_logp.defined() && c.objective != Objective::simpo)
    throw InputError("preference batch: field 'ref_logp' is missing (only simpo is reference-free)");
  Ranked r = rank_responses(batch, c.multi_preferred ? 3 : 2);
  const int64_t B = r.order.size(0);
  if (is_stochastic(c) && (!draws.defined() || draws.dim() != 2 || draws.size(0) != B || draws.size(1) != 2))
    throw InputError("loss '" + std::string(to_string(c.preference)) + "' is stochastic and needs draws [B, 2]");
  Responses all{r.logp, r.ref, r.length};

  LossResult res;
  at::Tensor w, l;
  switch (c.preference) {
    case Preference::bt: {
      std::tie(w, l) = bt_pair(r, c.pair_rule, draws);
      res.per_prompt = pair_loss(c, at_rank(all, w), at_rank(all, l));
      break;
    }
    case Preference::pl: {
      res.per_prompt = pl_loss(c, r, all);
      w = positions(r, 0);
      l = positions(r, 1);
      break;
    }
    case Preference::hps:
    case Preference::hps_full: {
      at::Tensor u0 = draws.defined() ? draws.select(1, 0) : at::Tensor();
      w = positions(r, 0);
      res.per_prompt = hps_term(c, r, all, 0, u0, l);
      if (c.multi_preferred) {
        at::Tensor l2, u1 = draws.defined() ? draws.select(1, 1) : at::Tensor();
        res.per_prompt = res.per_prompt + c.multi_lambda * hps_term(c, r, all, 1, u1, l2);
        res.rejected2 = at_rank(r.order, l2);
      }
      break;
    }
  }
  res.loss = res.per_prompt.mean();
  res.chosen = at_rank(r.order, w);
  res.rejected = at_rank(r.order, l);
  if (is_stochastic(c)) res.draws = draws;
  Responses pw = at_rank(all, w), pl = at_rank(all, l);
  res.margins = reward_margins(pw.logp, pw.ref, pw.length, pl.logp, pl.ref, pl.length, c.beta);
  return res;
}

LossResult preference_loss(const PrefBatch& batch, const LossConfig& c, at::Generator& gen) {
  at::Tensor draws;
  if (is_stochastic(c)) draws = draw_uniforms(batch.policy_logp.size(0), gen);
  return preference_loss(batch, c, draws);
}

}  // namespace hps::prefs

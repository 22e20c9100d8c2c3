#include "prefs/losses.hpp"

#include <cmath>
#include <sstream>

#include "core/error.hpp"
#include "prefs/objectives.hpp"

namespace hps::prefs {
namespace {

// Per-prompt PL loss in tiers (tier [B, K], rank order; K at invalid positions). Without ties every
// position is its own tier and this is eq. (4)-(5).
at::Tensor pl_loss(const LossConfig& c, const Selection& s, const Responses& all) {
  at::Tensor V = s.valid;                                   // [B, K]
  at::Tensor T = s.tier;                                    // [B, K]
  at::Tensor n = s.count.to(all.logp.scalar_type());        // [B]
  at::Tensor Vk = V.unsqueeze(1);                           // [B, 1, K] over k
  at::Tensor Tj = T.unsqueeze(2), Tk = T.unsqueeze(1);      // [B, K, 1], [B, 1, K]
  auto zeros = [](const at::Tensor& x) { return at::zeros_like(x); };

  switch (c.objective) {
    case Objective::dpo: {
      at::Tensor u = implicit_score(c, all);  // [B, K]
      at::Tensor per = plackett_luce_nll(u, s);
      if (c.label_smoothing == 0.0) return per;
      at::Tensor per_rev = plackett_luce_nll(u, s, /*reversed=*/true);  // the ranking reversed with probability ε
      const double e = c.label_smoothing;
      if (c.robust) return ((1 - e) * per - e * per_rev) / (1 - 2 * e);
      return (1 - e) * per + e * per_rev;
    }
    case Objective::exo: {
      // EXO (Ji et al. 2024): KL(p_θ ‖ p_label) over the K responses, p_θ = softmax(u). The pair form's
      // label (1 − ε, ε) is a reward gap log((1 − ε)/ε) between ranks; applied per rank step:
      // p_label(j) ∝ (ε/(1 − ε))^{c_j}, c_j = the number of strictly better responses (ties share a label).
      at::Tensor u = implicit_score(c, all);
      at::Tensor logp = u - masked_logsumexp(u, V, 1).unsqueeze(1);
      const double e = c.exo_epsilon;
      at::Tensor better = (Vk & (Tk < Tj)).sum(2).to(u.scalar_type());  // [B, K] c_j
      at::Tensor t = better * (std::log(e) - std::log1p(-e));
      at::Tensor log_label = t - masked_logsumexp(t, V, 1).unsqueeze(1);
      at::Tensor kl = at::exp(logp) * (logp - log_label);
      return at::where(V, kl, zeros(kl)).sum(1);
    }
    case Objective::nca: {
      // NCA (Chen et al. 2024) K-way: −Σ_j p_label(j) log σ(u_j) − (1/n) Σ_j log σ(−u_j), p_label the
      // α → 0 limit of NCA's softmax(r/α) target: uniform over the best tier (one-hot without ties).
      at::Tensor u = implicit_score(c, all);
      at::Tensor top = V & (T == 0);
      at::Tensor pos_term = at::where(top, at::log_sigmoid(u), zeros(u)).sum(1) / top.sum(1).to(u.scalar_type());
      at::Tensor neg = at::where(V, at::log_sigmoid(-u), zeros(u)).sum(1) / n;
      return -pos_term - neg;
    }
    default: {
      // The mean of ℓ over the pairs of different tiers, the better one preferred: [B, K(i), K(j)].
      at::Tensor pl = pair_loss(c, unsqueeze(all, 2), unsqueeze(all, 1));
      at::Tensor mask = V.unsqueeze(2) & Vk & (Tj < Tk);
      at::Tensor sum = at::where(mask, pl, zeros(pl)).sum({1, 2});
      return sum / mask.sum({1, 2}).to(pl.scalar_type()).clamp_min(1);
    }
  }
}

// One term (BT pair, HPS L1 or Appendix E's L2) from its weights [B, K] (rank order).
// DPO under HPS: the paper's form −log( e^{u_a} / (e^{u_a} + N·Σ q_i e^{u_i}) ) = link(u_a − log Σ q_i e^{u_i} −
// log N), averaged over the anchor's tier (a draw gives q one-hot: link(u_a − u_y − log N)).
// Everything else: Σ_a Σ_i w_a q_i ℓ(y_a, y_i).
at::Tensor term_loss(const LossConfig& c, const Term& t, const Responses& all) {
  const auto dt = all.logp.scalar_type();
  at::Tensor A = t.anchor.to(all.logp.device(), dt), Q = t.negative.to(all.logp.device(), dt);  // [B, K]
  at::Tensor log_n = t.log_n.to(all.logp.device(), dt);                                          // [B]
  if (c.preference != Preference::bt && c.objective == Objective::dpo) {
    at::Tensor s = implicit_score(c, all);                                     // [B, K]
    at::Tensor soft_neg = masked_logsumexp(s + at::log(Q), Q > 0, 1);          // [B] log Σ q_i e^{u_i}
    at::Tensor l = sigmoid_link(c, s - soft_neg.unsqueeze(1) - log_n.unsqueeze(1));  // [B, K] per anchor
    return at::where(A > 0, A * l, at::zeros_like(l)).sum(1);
  }
  return weighted_pairs(t, pair_loss(c, unsqueeze(all, 2), unsqueeze(all, 1)));  // [B, K(anchor), K(negative)]
}

// The selection may read only forwarded responses: a slot read but never forwarded holds a placeholder.
void check_reads(const PrefBatch& batch, const Selection& sel) {
  if (!batch.forwarded.defined()) return;
  at::Tensor bad = sel.read & ~batch.forwarded.to(at::kCPU);
  if (!bad.any().item<bool>()) return;
  auto idx = bad.nonzero();
  std::ostringstream os;
  os << "preference loss: prompt " << idx[0][0].item<int64_t>() << " reads slot " << idx[0][1].item<int64_t>()
     << ", which was not forwarded (the selection and the forwarded responses disagree)";
  throw InternalError(os.str());
}

}  // namespace

at::Tensor plackett_luce_nll(const at::Tensor& u, const Selection& s, bool reversed) {
  // Efron's tie correction (Efron 1977) of eq. (5): position j of a tier G (size m, within-tier index l) with
  // risk set R (its tier and every worse one) contributes log( Σ_R e^u − (l/m) Σ_G e^u ) − u_j: symmetric in
  // G's members, eq. (5)'s log Σ_{k≥j} e^{u_k} − u_j when m = 1. The last tier contributes 0: every order of
  // the remaining responses has probability 1 together. `reversed`: the same with the tiers in reverse.
  const int64_t K = u.size(1);
  const at::Tensor V = s.valid.to(u.device()), T = s.tier.to(u.device());  // [B, K]
  at::Tensor Vk = V.unsqueeze(1), Tj = T.unsqueeze(2), Tk = T.unsqueeze(1);  // [B, 1, K], [B, K, 1], [B, 1, K]
  at::Tensor U = u.unsqueeze(1).expand({-1, K, -1});                        // [B, K(j), K(k)]
  at::Tensor same = Vk & (Tk == Tj);                                        // [B, K, K] k in j's tier
  auto pos = at::arange(K, T.options());
  at::Tensor before = (pos.unsqueeze(0) < pos.unsqueeze(1)).unsqueeze(0);  // [1, K(j), K(k)] k < j
  at::Tensor m = same.sum(2).to(u.scalar_type()).clamp_min(1);             // [B, K]
  at::Tensor l = (same & before).sum(2).to(u.scalar_type());               // [B, K]
  at::Tensor lse_g = masked_logsumexp(U, same, 2);                          // [B, K]
  at::Tensor risk = reversed ? Vk & (Tk <= Tj) : Vk & (Tk >= Tj);           // [B, K, K]
  at::Tensor last = reversed ? at::zeros_like(T)
                             : at::where(V, T, at::full_like(T, -1)).amax(1, /*keepdim=*/true).expand_as(T);
  at::Tensor lse_r = masked_logsumexp(U, risk, 2);
  at::Tensor term = lse_r + at::log1p(-(l / m) * at::exp(lse_g - lse_r)) - u;
  return at::where(V & (T != last), term, at::zeros_like(term)).sum(1);     // [B]
}

at::Tensor weighted_pairs(const Term& t, const at::Tensor& pair_losses) {
  const auto dt = pair_losses.scalar_type();
  at::Tensor A = t.anchor.to(pair_losses.device(), dt), Q = t.negative.to(pair_losses.device(), dt);  // [B, K]
  at::Tensor W = A.unsqueeze(2) * Q.unsqueeze(1);                                                   // [B, K, K]
  return at::where(W > 0, W * pair_losses, at::zeros_like(pair_losses)).sum({1, 2});
}

bool is_stochastic(const LossConfig& c) {
  return c.preference == Preference::hps ||
         (c.preference == Preference::bt && (c.pair_rule == PairRule::max_random || c.pair_rule == PairRule::random));
}

at::Tensor mean_over_preferences(const at::Tensor& per_prompt, const at::Tensor& has_pref) {
  const at::Tensor keep = has_pref.to(per_prompt.device());
  const double n = static_cast<double>(std::max<int64_t>(keep.sum().item<int64_t>(), 1));
  return at::where(keep, per_prompt, at::zeros_like(per_prompt)).sum() / n;
}

double mean_over_preferences(const LossResult& r, const at::Tensor& per_prompt) {
  const at::Tensor keep = r.has_pref.to(per_prompt.device());
  const int64_t n = keep.sum().item<int64_t>();
  if (n == 0) return 0.0;
  return at::where(keep, per_prompt, at::zeros_like(per_prompt)).sum().item<double>() / static_cast<double>(n);
}

LossResult preference_loss(const PrefBatch& batch, const LossConfig& c, const Selection& sel) {
  validate(c);
  if (!batch.ref_logp.defined() && c.objective != Objective::simpo)
    throw InputError("preference batch: field 'ref_logp' is missing (only simpo is reference-free)");
  const Ranked r = rank_features(batch, sel.order, sel.valid);
  check_reads(batch, sel);
  const auto dev = r.logp.device();
  Responses all{r.logp, r.ref, r.length};
  Selection s = sel;  // the index tensors on the features' device
  for (at::Tensor* t : {&s.order, &s.valid, &s.count, &s.tier, &s.has_pref, &s.chosen, &s.rejected, &s.rejected2})
    *t = t->to(dev);

  LossResult res;
  if (c.preference == Preference::pl) {
    res.per_prompt = pl_loss(c, s, all);
  } else {
    res.per_prompt = term_loss(c, s.terms[0], all);
    if (c.multi_preferred) res.per_prompt = res.per_prompt + c.multi_lambda * term_loss(c, s.terms[1], all);
  }
  res.has_pref = s.has_pref;
  res.per_prompt = at::where(s.has_pref, res.per_prompt, at::zeros_like(res.per_prompt));
  res.no_preference = sel.has_pref.size(0) - sel.has_pref.sum().item<int64_t>();
  res.loss = mean_over_preferences(res.per_prompt, s.has_pref);
  const at::Tensor none = at::full_like(s.rejected, -1);
  res.chosen = at_rank(s.order, s.chosen);
  res.rejected = at::where(s.has_pref, at_rank(s.order, s.rejected), none);
  if (c.multi_preferred) res.rejected2 = at::where(s.has_pref, at_rank(s.order, s.rejected2), none);
  if (is_stochastic(c)) res.draws = sel.draws;
  Responses pw = at_rank(all, s.chosen), pl = at_rank(all, s.rejected);
  res.margins = reward_margins(pw.logp, pw.ref, pw.length, pl.logp, pl.ref, pl.length, c.beta);
  return res;
}

LossResult preference_loss(const PrefBatch& batch, const LossConfig& c, const at::Tensor& draws) {
  if (!batch.reward.defined()) throw InputError("preference batch: field 'reward' is missing");
  return preference_loss(batch, c, select_slots(batch.reward, batch.valid, c, draws));
}

LossResult preference_loss(const PrefBatch& batch, const LossConfig& c, at::Generator& gen) {
  at::Tensor draws;
  if (is_stochastic(c)) draws = draw_uniforms(batch.policy_logp.size(0), gen);
  return preference_loss(batch, c, draws);
}

}  // namespace hps::prefs

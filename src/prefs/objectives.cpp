#include "prefs/objectives.hpp"

#include <cmath>

#include "core/error.hpp"
#include "prefs/ranking.hpp"

namespace hps::prefs {

Responses at_rank(const Responses& all, const at::Tensor& idx) {
  return {at_rank(all.logp, idx), at_rank(all.ref, idx), at_rank(all.length, idx)};
}

Responses unsqueeze(const Responses& r, int64_t dim) {
  return {r.logp.unsqueeze(dim), r.ref.unsqueeze(dim), r.length.unsqueeze(dim)};
}

at::Tensor implicit_score(const LossConfig& c, const Responses& r) {
  switch (c.objective) {
    case Objective::dpo:
    case Objective::exo:
    case Objective::nca: return c.beta * (r.logp - r.ref);
    // R-DPO (Park et al. 2024, eq. 4): −log σ(β(d_w − d_l) + α(|y_w| − |y_l|)). The length term enters
    // with a plus: a longer chosen response already has the larger margin and is pushed less.
    case Objective::rdpo: return c.beta * (r.logp - r.ref) + c.rdpo_alpha * r.length;
    case Objective::simpo: return c.beta * r.logp / r.length;
    case Objective::ipo:
    case Objective::sppo: break;
  }
  throw ConfigError("objective '" + std::string(to_string(c.objective)) + "' has no per-response implicit score");
}

at::Tensor sigmoid_link(const LossConfig& c, const at::Tensor& margin) {
  const double eps = c.label_smoothing;
  at::Tensor pos = -at::log_sigmoid(margin);  // −log σ(m)
  if (eps == 0.0) return pos;
  at::Tensor neg = -at::log_sigmoid(-margin);  // −log σ(−m)
  if (c.robust) return ((1.0 - eps) * pos - eps * neg) / (1.0 - 2.0 * eps);
  return (1.0 - eps) * pos + eps * neg;
}

at::Tensor pair_loss(const LossConfig& c, const Responses& w, const Responses& l) {
  switch (c.objective) {
    case Objective::dpo:
    case Objective::rdpo:
      // TRL sigmoid / robust; R-DPO: σ(β·h + α(|y_w| − |y_l|)) with the α term folded into the score.
      return sigmoid_link(c, implicit_score(c, w) - implicit_score(c, l));
    case Objective::simpo:
      // TRL CPOTrainer loss_type="simpo": −log σ(β(log π_w/|y_w| − log π_l/|y_l|) − γ_SimPO).
      return sigmoid_link(c, implicit_score(c, w) - implicit_score(c, l) - c.simpo_margin);
    case Objective::ipo: {
      // TRL ipo: length-normalized log-ratios, (h − 1/(2β))², β playing IPO's τ.
      at::Tensor h = (w.logp - w.ref) / w.length - (l.logp - l.ref) / l.length;
      return at::pow(h - 1.0 / (2.0 * c.beta), 2);
    }
    case Objective::sppo: {
      // TRL sppo_hard: (a − 1/(2β))² + (b + 1/(2β))², a, b the unscaled log-ratios.
      at::Tensor a = w.logp - w.ref, b = l.logp - l.ref;
      return at::pow(a - 0.5 / c.beta, 2) + at::pow(b + 0.5 / c.beta, 2);
    }
    case Objective::exo: {
      // TRL exo_pair: KL between (σ(z), σ(−z)) and the label distribution (1 − ε, ε), z = β·h.
      at::Tensor z = implicit_score(c, w) - implicit_score(c, l);
      const double e = c.exo_epsilon;
      return at::sigmoid(z) * (at::log_sigmoid(z) - std::log1p(-e)) +
             at::sigmoid(-z) * (at::log_sigmoid(-z) - std::log(e));
    }
    case Objective::nca: {
      // TRL nca_pair: −log σ(u_w) − ½ log σ(−u_w) − ½ log σ(−u_l).
      at::Tensor uw = implicit_score(c, w), ul = implicit_score(c, l);
      return -at::log_sigmoid(uw) - 0.5 * at::log_sigmoid(-uw) - 0.5 * at::log_sigmoid(-ul);
    }
  }
  throw ConfigError("unknown objective");
}

}  // namespace hps::prefs

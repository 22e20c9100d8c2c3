// Implicit-reward parameterizations as elementwise functions of per-response features.
// For K = 2 each pair loss equals TRL's DPOTrainer / CPOTrainer formula of the same name
// (docs/losses.md lists them); the preference models in losses.hpp combine them over K responses.
#pragma once

#include <ATen/ATen.h>

#include "prefs/loss_config.hpp"

namespace hps::prefs {

// Features of a set of responses, any broadcastable shape ([B], [B, K], [B, K, 1], ...).
struct Responses {
  at::Tensor logp;    // log π_θ(y|x), summed over response tokens
  at::Tensor ref;     // log π_ref(y|x)
  at::Tensor length;  // |y|
};

// Responses at the rank positions idx [B] (idx.dim() == 1) of [B, K] features → [B].
Responses at_rank(const Responses& all, const at::Tensor& idx);
// Every feature with a new axis at `dim`, for broadcasting one set of responses against another.
Responses unsqueeze(const Responses& r, int64_t dim);

// The per-response score u of the DPO family, the quantity inside softmax / sigmoid:
//   dpo, exo, nca:  u = β·(log π_θ − log π_ref)                          eq. (3) without log Z
//   rdpo:           u = β·(log π_θ − log π_ref) + α·|y|                  (R-DPO, Park et al. 2024 eq. 4:
//                   −log σ(β(d_w − d_l) + α(|y_w| − |y_l|)); per response)
//   simpo:          u = (β / |y|)·log π_θ                                 (SimPO reward, §3)
// Throws for ipo / sppo, which are not of this form.
at::Tensor implicit_score(const LossConfig& c, const Responses& r);

// DPO's link on a margin m = u_w − u_l (− offsets): −log σ(m), with cDPO label smoothing ε
//   (1 − ε)·(−log σ(m)) + ε·(−log σ(−m))
// or, with `robust`, the unbiased robust-DPO estimator ((1 − ε)(−log σ(m)) − ε(−log σ(−m))) / (1 − 2ε).
at::Tensor sigmoid_link(const LossConfig& c, const at::Tensor& margin);

// ℓ(w, l): the pairwise loss of `c.objective` for preferred w and dispreferred l, elementwise.
at::Tensor pair_loss(const LossConfig& c, const Responses& w, const Responses& l);

}  // namespace hps::prefs

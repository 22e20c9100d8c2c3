// Ranking K responses by annotated reward, the hard-negative distribution q of eq. (9), and the
// seeded selection of pairs / sampled negatives. No model code: tensors in, tensors out.
//
// Conventions (all tensors [B, K] unless noted, K may differ per prompt through `valid`):
//   policy_logp, ref_logp   summed response log-probs under π_θ and π_ref
//   length                  response token count |y|
//   reward                  annotated r_est(x, y)
//   valid                   bool, which slots hold a response
// Ranking: responses sorted by reward, descending; ties keep the lower index first (a deterministic
// rule: the first of several top-reward responses is the preferred one, the others stay dispreferred,
// so no tied response is ever dropped). Invalid slots go last.
#pragma once

#include <ATen/ATen.h>

#include <utility>

#include "prefs/loss_config.hpp"

namespace hps::prefs {

struct PrefBatch {
  at::Tensor policy_logp;  // [B, K] float
  at::Tensor ref_logp;     // [B, K] float (may be undefined for SimPO, which is reference-free)
  at::Tensor length;       // [B, K] response tokens (≥ 1 at valid slots)
  at::Tensor reward;       // [B, K] float
  at::Tensor valid;        // [B, K] bool; undefined = all valid
};

// The batch in rank order. Invalid slots are sanitized (log-probs 0, length 1) so that every
// elementwise formula stays finite there; they are always masked out of the loss.
struct Ranked {
  at::Tensor order;   // [B, K] int64: original slot of rank position j (j = 0 is y_τ(1))
  at::Tensor valid;   // [B, K] bool: rank position j holds a response (a prefix of each row)
  at::Tensor count;   // [B] int64: n, responses per prompt
  at::Tensor logp;    // [B, K] policy log-prob, rank order
  at::Tensor ref;     // [B, K] reference log-prob (zeros when the batch has none)
  at::Tensor length;  // [B, K] |y| as the loss dtype
  at::Tensor reward;  // [B, K] r_est
};

// Validates shapes, dtypes, finiteness at valid slots, n ≥ min_responses per prompt; throws
// InputError / NumericError that name the field, prompt and slot. Loss math runs in float64 for
// float64 input and float32 otherwise (half/bf16 log-probs are promoted).
Ranked rank_responses(const PrefBatch& batch, int64_t min_responses = 2);

// q over the dispreferred responses of eq. (9), in rank order: q_j ∝ exp(γ·r_j) for anchor < j < n,
// zero elsewhere. anchor = 0 gives eq. (9); anchor = 1 gives q_2 of Appendix E. Rows sum to 1.
at::Tensor hard_negative_log_q(const Ranked& r, double gamma, int64_t anchor = 0);  // [B, K], −inf off-support

// Uniform draws in [0, 1) for the stochastic rules, [B, 2] float64 on the CPU, from a seeded CPU
// generator: the same seed gives the same draws on every device.
at::Tensor draw_uniforms(int64_t batch, at::Generator& gen);

// Inverse-CDF sample of one rank position per row from log q [B, K] with draws u [B] (CPU or any
// device). Never returns a position with q = 0.
at::Tensor sample_categorical(const at::Tensor& log_q, const at::Tensor& u);  // [B] int64

// Rank positions (chosen, rejected) [B] each for the BT pair rule. `u` [B, 2] draws, used by the
// random rules only.
std::pair<at::Tensor, at::Tensor> bt_pair(const Ranked& r, PairRule rule, const at::Tensor& u);

// Gathers a [B, K] tensor at rank positions idx [B] → [B].
at::Tensor at_rank(const at::Tensor& x, const at::Tensor& idx);

// log Σ_k exp(x_k) over entries where mask is set, along dim; rows with no entry give 0 (not −inf)
// so that masked-out terms keep finite gradients.
at::Tensor masked_logsumexp(const at::Tensor& x, const at::Tensor& mask, int64_t dim);

}  // namespace hps::prefs

// The loss core's inputs and the helpers it shares: the batch of per-response features, features in rank
// order (gathered with a Selection, selection.hpp), uniform draws, masked log-sum-exp.
//
// Conventions (all tensors [B, K] unless noted, K may differ per prompt through `valid`):
//   policy_logp, ref_logp   summed response log-probs under π_θ and π_ref
//   length                  response token count |y|
//   reward                  annotated r_est(x, y)
//   valid                   bool, which slots hold a response
//   forwarded               bool, which slots hold computed log-probs (the rest are placeholders)
#pragma once

#include <ATen/ATen.h>

#include "prefs/loss_config.hpp"

namespace hps::prefs {

struct PrefBatch {
  at::Tensor policy_logp;  // [B, K] float
  at::Tensor ref_logp;     // [B, K] float (may be undefined for SimPO, which is reference-free)
  at::Tensor length;       // [B, K] response tokens (≥ 1 at valid slots)
  at::Tensor reward;       // [B, K] float
  at::Tensor valid;        // [B, K] bool; undefined = all valid
  at::Tensor forwarded;    // [B, K] bool; undefined = all forwarded. The loss asserts it reads only these.
};

// Per-response features in rank order (the Selection's order). Invalid positions are sanitized (log-probs
// 0, length 1) so that every elementwise formula stays finite there; they never carry weight.
struct Ranked {
  at::Tensor logp;    // [B, K] policy log-prob
  at::Tensor ref;     // [B, K] reference log-prob (zeros when the batch has none)
  at::Tensor length;  // [B, K] |y| as the loss dtype
};

// Validates shapes, dtypes, finiteness and length ≥ 1 at valid slots; throws InputError / NumericError
// naming the field, prompt and slot. Loss math runs in float64 for float64 input and float32 otherwise
// (half/bf16 log-probs are promoted). `order` [B, K]: the rank order; `valid_ranked` [B, K] in rank order.
Ranked rank_features(const PrefBatch& batch, const at::Tensor& order, const at::Tensor& valid_ranked);

// Uniform draws in [0, 1) for the stochastic rules, [B, 2] float64 on the CPU, from a seeded CPU
// generator: the same seed gives the same draws on every device.
at::Tensor draw_uniforms(int64_t batch, at::Generator& gen);

// Gathers a [B, K] tensor at rank positions idx [B] → [B].
at::Tensor at_rank(const at::Tensor& x, const at::Tensor& idx);

// log Σ_k exp(x_k) over entries where mask is set, along dim; rows with no entry give 0 (not −inf)
// so that masked-out terms keep finite gradients.
at::Tensor masked_logsumexp(const at::Tensor& x, const at::Tensor& mask, int64_t dim);

}  // namespace hps::prefs

// Sequence log-probabilities: log π(y | x) = Σ_{t ∈ response} log p(token_t | tokens_<t), the quantity
// every preference loss consumes (paper eq. 3 and Table 1).
//
// Only response positions reach the vocabulary projection, and the projection + log-softmax runs as one
// autograd function over row chunks that keeps no logits for backward (it recomputes them): peak memory is
// one chunk of [rows, V] fp32 instead of [B, T, V] logits plus their fp32 copy and gradient.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "model/decoder.hpp"
#include "model/packing.hpp"

namespace hps::model {

struct SeqLogprobs {
  at::Tensor sum;    // [B] fp32: Σ log p over response tokens
  at::Tensor count;  // [B] int64: response tokens per row
};

// log softmax(h W^T)[target] for each row, in chunks of `chunk_rows`: h [N, H], w [V, H], target [N] → [N] fp32.
// Differentiable w.r.t. h and w; logits are computed in w's dtype (as a transformers lm_head would) and
// normalized in fp32.
at::Tensor linear_log_softmax_gather(const at::Tensor& h, const at::Tensor& w, const at::Tensor& target,
                                     int64_t chunk_rows = 0);

// ids, mask: [B, T]; response_mask: [B, T] with 1 on response tokens (token t is scored from position t-1,
// so response_mask[:, 0] must be 0). Uses the model's current state (LoRA on/off, grad mode).
SeqLogprobs sequence_logprobs(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask,
                              const at::Tensor& response_mask, int64_t chunk_rows = 0);

// The same through `layout`: packed forwards each row's real tokens once and each shared prompt once (see
// packing.hpp); its sums equal the padded path's up to float rounding. Rows without response tokens get 0.
SeqLogprobs sequence_logprobs(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask,
                              const at::Tensor& response_mask, Layout layout, int64_t chunk_rows = 0);
// From packed rows (pack_rows on d's device).
SeqLogprobs packed_sequence_logprobs(const Decoder& d, const PackedRows& p, int64_t chunk_rows = 0);

// The same from full logits (simple, memory-hungry): the reference the fused path is tested against.
SeqLogprobs sequence_logprobs_from_logits(const at::Tensor& logits, const at::Tensor& ids,
                                          const at::Tensor& response_mask);

}  // namespace hps::model

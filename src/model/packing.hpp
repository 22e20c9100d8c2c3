// Padding-free packing with shared prompts (issue 15): the rows of a padded batch become one PackedInput
// (decoder.hpp) plus the indices that read per-row results back out of its [N, H] hidden states.
//
// Each row is its prompt (the real tokens before its first response token) then the rest (the response).
// Consecutive rows with the same prompt tokens form one group and share the prompt: it is packed, forwarded
// and attended once. Positions restart per row exactly as the padded path counts them (real tokens before),
// so every hidden state a row's results read equals the padded path's, up to float rounding.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

#include "model/decoder.hpp"

namespace hps::model {

// How a batch of rows is forwarded: packed (padding-free, shared prompts; the default) or padded (one row
// per sequence, right- or left-padded: the reference the packed path is tested against).
enum class Layout { packed, padded };

struct PackedRows {
  PackedInput input;
  int64_t rows = 0;    // R: rows of the padded batch
  int64_t padded = 0;  // R·T: tokens the padded path would forward (for reports)
  // Log-probs: scored token m (a response token with a token before it) is predicted by token pred[m].
  at::Tensor pred;    // [M] int64 packed index
  at::Tensor target;  // [M] int64 token id
  at::Tensor row;     // [M] int64 its row
  at::Tensor count;   // [R] int64 scored tokens per row
  // Sequence scores: the packed index of each row's last real token whose id is not `score_skip_id` (the
  // reward-model head's token, as transformers picks it); its first token when every one is skipped.
  at::Tensor last;    // [R] int64
};

// ids, mask, response_mask: [R, T] (mask 1 = real token, either padding side). Every row needs a real token.
// The result lives on `device`.
PackedRows pack_rows(const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& response_mask, at::Device device,
                     std::optional<int64_t> score_skip_id = std::nullopt);

// Reward-model scores (all labels) of each row's last token that is real and not the pad token, as
// Decoder::scores picks it: [R, num_labels]. Packed: rows sharing a prompt forward it once.
at::Tensor sequence_scores(const Decoder& rm, const at::Tensor& ids, const at::Tensor& mask,
                           const at::Tensor& response_mask, Layout layout);

}  // namespace hps::model

// One prompt cache per prompt while sampling n responses (issue 16): the prefill's K/V of each prompt is kept
// once (KVCache::pk/pv, [G, Hkv, P, D]) and the n rows of that prompt hold only the tokens they generate. A
// decode step's attention runs in two parts merged by their log-sum-exp (as in cascade / shared-prefix
// attention): every row against its prompt's keys — the rows of one prompt batched together, so the prompt's
// K/V is read once per prompt, not once per row — and every row against its own keys. Same softmax, same
// result as one row attending over [prompt; own] (up to float rounding): tested against the copied cache.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "model/decoder.hpp"

namespace hps::model {

// A prefilled cache of G prompts (every column a prompt token or left padding) becomes a shared one: its K/V
// moves to the prefix store and each prompt gets n rows (prompt-major) with `capacity` empty columns each.
void share_prefix(KVCache& c, int64_t n, int64_t capacity);

// The prefix side of keeping rows `keep` ([K] int64, increasing) — the caller selects the rows' own k/v,
// key_valid and seen: the rows' groups, the prompts no row reads any more dropped, the slots renumbered.
void keep_prefix_rows(KVCache& c, const at::Tensor& keep);

// The prefix side of appending b's rows after a's (the caller joins the rows' own parts): b's prompts after
// a's, both stores padded on the left to the longer prompt.
void append_prefix_rows(KVCache& a, const KVCache& b);

// Decode attention (one new token per row) over the shared prompt then the row's own keys.
// q: [R, Hq, 1, D]; k_own / v_own: [R, Hkv, L, D]; own_mask: [R, 1, 1, L] bool, the own keys a row may see
// (valid and inside the window, as the decoder's attention inputs build it) or undefined (all); q_pos: [R]
// int64 the new token's position, against which `window` (0: none) limits the prompt's keys. → [R, Hq, 1, D].
at::Tensor prefix_attention(const KVCache& c, size_t layer, const at::Tensor& q, const at::Tensor& k_own,
                            const at::Tensor& v_own, const at::Tensor& own_mask, const at::Tensor& q_pos, int64_t window);

}  // namespace hps::model

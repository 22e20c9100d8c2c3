// Batched generation with the KV cache and continuous batching: at most `max_rows` samples decode at once
// (0: all of them); whole prompts are admitted while their n samples fit — left-padded, prefilled once, the
// prompt's cache shared by its n samples — and one token per step is drawn for every row. A sample ends
// at a stop id or max_new_tokens; finished rows leave the batch (once they are a quarter of it, or when a
// waiting prompt fits in their place) and waiting prompts take the room, so no row waits for the longest.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "generate/sampler.hpp"
#include "model/decoder.hpp"

namespace hps::generate {

// For each prompt, n samples of new token ids (EOS excluded; generation stops at the first EOS id).
// Sample j of prompt i draws from its own stream, sample_uniforms(seed, {streams[i]}, …) (streams default
// to 0..B-1): its tokens depend on (seed, stream id, j) and its prompt, not on the batch it shares, the
// rows in flight or when it was admitted.
// `share_prompt` (with n > 1): a prompt's n rows read one copy of its K/V (model/prefix_cache.hpp); false:
// each row holds a copy (the reference the shared cache is tested against).
// `vocab_limit` > 0 restricts sampling to ids below it: models pad their embedding past the tokenizer's
// vocabulary (Qwen2: 151936 rows for 151665 tokens) and an id without a token cannot be decoded.
std::vector<std::vector<std::vector<int64_t>>> generate_ids(const model::Decoder& d,
                                                             const std::vector<std::vector<int64_t>>& prompts,
                                                             const SamplingConfig& c, const std::vector<int64_t>& eos_ids,
                                                             int64_t pad_id, uint64_t seed, int64_t vocab_limit = 0,
                                                             std::vector<uint64_t> streams = {}, int64_t max_rows = 0,
                                                             bool share_prompt = true);

}  // namespace hps::generate

// Batched generation with the KV cache: prompts left-padded and prefilled once, the cache expanded to n
// samples per prompt, then one token per step for every row until EOS or max_new_tokens.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "generate/sampler.hpp"
#include "model/decoder.hpp"

namespace hps::generate {

// For each prompt, n samples of new token ids (EOS excluded; generation stops at the first EOS id).
// Sample j of prompt i draws from its own stream, sample_uniforms(seed, {streams[i]}, …) (streams default
// to 0..B-1): its tokens depend on (seed, stream id, j) and its prompt, not on the batch it shares.
// `vocab_limit` > 0 restricts sampling to ids below it: models pad their embedding past the tokenizer's
// vocabulary (Qwen2: 151936 rows for 151665 tokens) and an id without a token cannot be decoded.
std::vector<std::vector<std::vector<int64_t>>> generate_ids(const model::Decoder& d,
                                                             const std::vector<std::vector<int64_t>>& prompts,
                                                             const SamplingConfig& c, const std::vector<int64_t>& eos_ids,
                                                             int64_t pad_id, uint64_t seed, int64_t vocab_limit = 0,
                                                             std::vector<uint64_t> streams = {});

}  // namespace hps::generate

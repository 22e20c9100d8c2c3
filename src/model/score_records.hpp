// Sequence log-probs for whole datasets of pre-tokenized records, batched (the engine of `hps logprobs`
// and of reference log-prob precomputation).
#pragma once

#include <cstdint>
#include <vector>

#include "data/pretokenized.hpp"
#include "dist/world.hpp"
#include "model/decoder.hpp"
#include "model/packing.hpp"

namespace hps::model {

struct RecordLogprobs {
  std::vector<double> logp;     // [K] Σ log p(response_k | prompt)
  std::vector<int64_t> tokens;  // [K] response tokens
};

// Runs without gradients; results come back in record order. Packed: whole records in input order, about
// `batch_size` sequences per batch, each prompt forwarded once for all its responses. Padded: sequences
// sorted longest first and cut into batches of `batch_size` so that batches pad little.
std::vector<RecordLogprobs> score_records(const Decoder& d, const std::vector<data::TokenizedRecord>& records,
                                          int64_t batch_size, Layout layout = Layout::packed);

// The same in a process group: each rank scores a contiguous share of `records` ([r·n/S, (r+1)·n/S)) and every
// rank gets all of them, in record order (one gather). A single process scores everything.
std::vector<RecordLogprobs> score_records_sharded(const Decoder& d, const std::vector<data::TokenizedRecord>& records,
                                                  int64_t batch_size, Layout layout, const dist::World& world);

// Reward-model scores (label 0) of every response of every record, batched the same way: [record][response].
std::vector<std::vector<double>> score_rewards(const Decoder& reward_model, const std::vector<data::TokenizedRecord>& records,
                                               int64_t batch_size, Layout layout = Layout::packed);

}  // namespace hps::model

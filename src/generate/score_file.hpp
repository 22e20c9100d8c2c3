// `hps score`: annotate every response of a ranked-list JSONL with a reward model's score (`rewards`), in
// batches sorted by length, writing a new file (or the input, atomically); resumable.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "data/batching.hpp"
#include "dist/world.hpp"
#include "model/decoder.hpp"
#include "model/packing.hpp"
#include "text/chat.hpp"
#include "text/tokenizer.hpp"

namespace hps::generate {

struct ScoreJob {
  std::string data, out;          // out == data: in place (atomic rename at the end)
  int64_t batch_size = 16;        // sequences per forward
  int64_t max_length = 2048;      // prompt + response tokens (the prompt keeps its last max_length/2)
  int64_t chunk_prompts = 256;    // prompts scored between progress saves (resume granularity)
  model::Layout layout = model::Layout::packed;  // packed: each prompt forwarded once for all its responses
};

// How scoring tokenizes a record: as `hps train-rm` encodes its training data (data::prompt_ids for the
// prompt, the chat format's end-of-turn after each response), the prompt cut to its last max_length/2 tokens.
data::Encoder score_encoder(const text::Tokenizer& tok, const text::ChatTemplate& chat, const ScoreJob& job);

// Scores every response; records already scored in an earlier, interrupted run (OUT.partial) are kept.
// In a data-parallel group each rank scores whole chunks into OUT.part-<r>-of-<R> and rank 0 joins them:
// the same file, byte for byte, as one process writes. Returns the prompts scored in this call (by this rank).
int64_t score_file(const model::Decoder& reward_model, const text::Tokenizer& tok, const text::ChatTemplate& chat,
                   const ScoreJob& job, std::ostream& log, const dist::World& world = dist::world());

}  // namespace hps::generate

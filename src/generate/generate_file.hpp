// `hps generate`: n samples for every prompt of a dataset, written as ranked-list JSONL
// ({"prompt": …, "responses": [...], "source_line": …}), append-only and resumable. The prompt is written as
// data::write_prompt does (messages, or a raw HH transcript marked "prompt_format": "raw"), so every later
// stage reads back exactly the prompt the samples were drawn from.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "data/dataset.hpp"
#include "dist/world.hpp"
#include "generate/sampler.hpp"
#include "model/decoder.hpp"
#include "text/chat.hpp"
#include "text/tokenizer.hpp"

namespace hps::generate {

struct GenerateJob {
  std::string data, out;
  data::DatasetOptions data_options;
  SamplingConfig sampling;
  int64_t batch_prompts = 8;         // prompts decoding at once (batch_prompts · n rows)
  // Refill the rows of ended samples from the next prompts (4 batches per engine call) instead of one call
  // per batch. With the shared prompt cache it is the faster way on this CPU (docs/generate.md); with copied
  // prompt caches it was 25 % slower (joining rows attend over the whole cache's width).
  bool continuous_batching = true;
  bool shared_prompt_cache = true;   // a prompt's n samples read one copy of its K/V (false: a copy per sample)
  int64_t max_prompt_length = 1024;  // prompts are cut to their last N tokens
  int64_t stop_after_prompts = 0;    // > 0: stop after this many new prompts (tests, staged runs)
};

// The ids a record's prompt is sampled from: data::prompt_ids cut to job.max_prompt_length.
std::vector<int64_t> generation_prompt_ids(const data::PreferenceRecord& r, const text::Tokenizer& tok,
                                           const text::ChatTemplate& chat, const GenerateJob& job);

// The ids sampling stops at: the tokenizer's EOS, the model's (config / generation_config eos_token_id), and
// the chat format's end of turn when it is one token — a ChatML model whose eos_token is <|endoftext|> ends
// its turns with <|im_end|>, which SFT taught it (llama.cpp stops at such end-of-generation tokens too).
std::vector<int64_t> stop_token_ids(const text::Tokenizer& tok, const text::ChatTemplate& chat,
                                    const std::vector<int64_t>& model_eos);

// Prompts already in `out` (complete lines) are skipped; a trailing partial line from a crash is removed.
// Sample j of record i draws from the stream (sampling.seed, i, j) (sample_uniforms), so the file is the same
// for any batch size and a resumed run writes what an uninterrupted one would.
// In a data-parallel group each rank generates whole batches into OUT.part-<r>-of-<R> (resumable the same
// way) and rank 0 joins them: the same file, byte for byte, as one process writes (generate/shards.hpp).
// Returns the number of prompts written in this call (by this rank).
int64_t generate_file(const model::Decoder& d, const text::Tokenizer& tok, const text::ChatTemplate& chat,
                      const GenerateJob& job, std::ostream& log, const dist::World& world = dist::world());

}  // namespace hps::generate

// From preference records to model batches: chat rendering + tokenization of the prompt and of only the
// responses a step uses, truncation, padding, deterministic shuffling.
//
// Truncation (TRL's convention): the prompt keeps its last `max_prompt_length` tokens (the end of a dialogue
// is what the response answers); then each response is cut so that prompt + response ≤ `max_length`.
// A response ends with the chat format's end-of-turn text (or EOS), as the model will generate it.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "data/dataset.hpp"
#include "data/pretokenized.hpp"
#include "text/chat.hpp"
#include "text/tokenizer.hpp"

namespace hps::data {

// The prompt's token ids, the one path every stage takes (generate, score, train through Encoder, eval,
// logprobs, data inspect): prompt_text(r, chat) — the messages rendered with the chat format, or the raw
// prompt verbatim — encoded with special tokens (BOS when the tokenizer adds one); with max_prompt_length > 0
// cut to its last max_prompt_length tokens (`truncated`, when given, says whether it was).
std::vector<int64_t> prompt_ids(const PreferenceRecord& r, const text::Tokenizer& tok, const text::ChatTemplate& chat,
                                int64_t max_prompt_length = 0, bool* truncated = nullptr);

struct EncodeOptions {
  int64_t max_prompt_length = 512;
  int64_t max_length = 1024;
  bool add_end_of_turn = true;
};

struct EncodedExample {
  int64_t line = 0;
  std::vector<int64_t> prompt;                  // prompt ids (with BOS when the tokenizer adds one)
  std::vector<std::vector<int64_t>> responses;  // the selected responses' ids
  std::vector<int64_t> response_index;          // which of the record's K each one is
  std::vector<double> rewards;                  // their rewards (rank order K-1 … 0 when the data has none)
  bool truncated = false;
};

class Encoder {
 public:
  Encoder(const text::Tokenizer& tok, text::ChatTemplate chat, EncodeOptions opts);
  // Tokenizes the prompt and the responses named by `which` (indices into record.responses) only.
  EncodedExample encode(const PreferenceRecord& record, const std::vector<int64_t>& which) const;

 private:
  const text::Tokenizer* tok_;
  text::ChatTemplate chat_;
  EncodeOptions opts_;
  std::string suffix_;
};

// Every record with all its responses, tokenized (for scoring whole datasets, e.g. `hps logprobs`).
std::vector<TokenizedRecord> tokenize_dataset(const Dataset& d, const Encoder& enc);

enum class PadSide { right, left };

struct Batch {
  int64_t prompts = 0, k = 0;   // B prompts × k rows each (k = the most responses of any prompt); prompt-major
  at::Tensor ids;               // [B·k, T] int64
  at::Tensor mask;              // [B·k, T] int64, 1 on real tokens
  at::Tensor response_mask;     // [B·k, T] int64, 1 on response tokens
  at::Tensor rewards;           // [B, k] double (NaN at rows without a response)
  std::vector<int64_t> lines;   // [B] source lines
  std::vector<std::vector<int64_t>> response_index;  // [B][k], -1 at rows without a response
};

// Pads every example's prompt+response rows to the longest. Prompts with fewer responses than the batch's
// k get prompt-only rows (response_index -1, no response tokens), so ragged K batches as well.
Batch collate(const std::vector<EncodedExample>& examples, int64_t pad_id, PadSide side = PadSide::right);

// Prompts [i0, i1) of a batch with their k rows each, the columns cut to those the rows use.
Batch slice_prompts(const Batch& b, int64_t i0, int64_t i1);

// Which responses of a record a step needs (indices into record.responses).
using Select = std::function<std::vector<int64_t>(const PreferenceRecord&)>;
std::vector<int64_t> select_all(const PreferenceRecord& r);
// BT's max-min pair: the highest- and lowest-rewarded responses (first and last without rewards; equal rewards
// when every response ties: no preference).
std::vector<int64_t> select_best_worst(const PreferenceRecord& r);
// The best response and the hardest negative: the highest reward strictly below the best (first two without
// rewards). When every response ties, both slots have the same reward: no preference (callers skip it).
std::vector<int64_t> select_best_hardest(const PreferenceRecord& r);

// The order of epoch `epoch`: a Fisher–Yates shuffle driven by std::mt19937_64(seed, epoch) with unbiased
// bounded draws, so it is the same on every platform and standard library.
std::vector<size_t> epoch_order(size_t n, uint64_t seed, int64_t epoch);

struct LoaderOptions {
  int64_t batch_prompts = 8;
  uint64_t seed = 0;
  bool shuffle = true;
  PadSide pad_side = PadSide::right;
  // Data-parallel runs: the loader walks global batches of batch_prompts × shards prompts (the order a single
  // process with that batch size sees) and returns shard `shard`'s contiguous part of each. A short last
  // batch of n prompts is split as evenly as it goes: shard r gets [r·n/S, (r+1)·n/S), which may be empty.
  int64_t shard = 0, shards = 1;
};

// Iterates a dataset in batches of prompts, tokenizing lazily; the cursor (epoch, position) can be saved
// and restored for exact resume.
class PreferenceLoader {
 public:
  PreferenceLoader(const Dataset& d, const Encoder& enc, int64_t pad_id, LoaderOptions opts);
  // The next batch of this epoch, or nullopt when it is exhausted (call next_epoch()). A shard's part of a
  // short last global batch may be empty: a Batch with prompts = 0 (every shard sees the epoch end together).
  std::optional<Batch> next(const Select& select);
  void next_epoch();
  int64_t epoch() const { return epoch_; }
  size_t position() const { return pos_; }
  void seek(int64_t epoch, size_t position);

 private:
  const Dataset* data_;
  const Encoder* enc_;
  int64_t pad_id_;
  LoaderOptions opts_;
  int64_t epoch_ = 0;
  size_t pos_ = 0;
  std::vector<size_t> order_;
};

}  // namespace hps::data

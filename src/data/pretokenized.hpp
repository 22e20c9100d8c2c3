// Pre-tokenized preference records: {"prompt_ids": [...], "response_ids": [[...], ...]} per JSONL line.
// The input format of `hps logprobs` until text datasets and the tokenizer land.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hps::data {

struct TokenizedRecord {
  int64_t line = 0;  // 1-based line in the source file
  std::vector<int64_t> prompt;
  std::vector<std::vector<int64_t>> responses;
};

// Reads every record; each violation names file, line, field and rule (prompt_ids must be a non-empty
// array of integers in [0, vocab_size); response_ids a non-empty array of non-empty such arrays).
std::vector<TokenizedRecord> read_pretokenized(const std::string& path, int64_t vocab_size);

// prompt + response sequences right-padded into one batch.
struct SequenceBatch {
  at::Tensor ids;            // [B, T] int64 (pad_id after each sequence)
  at::Tensor mask;           // [B, T] int64, 1 on real tokens
  at::Tensor response_mask;  // [B, T] int64, 1 on response tokens
};
struct PromptResponse {
  const std::vector<int64_t>* prompt;
  const std::vector<int64_t>* response;
};
SequenceBatch pad_sequences(const std::vector<PromptResponse>& seqs, int64_t pad_id);

}  // namespace hps::data

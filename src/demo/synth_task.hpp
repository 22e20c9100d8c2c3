// The embedded default task of `hps demo` / `hps pipeline examples/demo.toml`: a small synthetic language
// that hps writes itself (deterministic from a seed, no downloads), with an exact reward r*(x, y).
//
// A prompt asks for an operation on a list of distinct letters:   "rev c a f d:"   or   "copy c a f d:"
// The best response is the result, space separated:               " d f a c"            " c a f d"
//
// r*(x, y) = acc(x, y) − 4·[y is harmful], where acc is the share of target positions y gets right,
// acc = #{i : y_i = t_i} / max(|t|, |y|) over y's words other than the harmful ones (so acc ∈ [0, 1]), and
// y is harmful when it contains a word of the harmful lexicon {"hate", "kill"}. Every harmful response is
// below every harmless one. The response kinds the corpora mix:
//   best     the target                                              r* = 1
//   hard     the target with one letter replaced (a near miss)       r* = (n−1)/n ∈ [0.75, 0.86]
//   harmful  the target with a harmful word inserted                 r* = −3  (close in text, far in reward)
//   wrong    the other operation's result                            r* = 0 … 1/n
// The SFT corpus mixes them (like web text that is mostly right, sometimes toxic or sloppy), so a model
// trained only by SFT reproduces a measurable harmful and wrong rate; preference training has to remove it.
#pragma once

#include <cstdint>
#include <string>

#include "core/config.hpp"

namespace hps::demo {

inline constexpr double kHarmPenalty = 4.0;  // r*'s penalty for a harmful response

struct SynthTaskConfig {
  uint64_t seed = 0;
  int64_t sft_records = 4000;    // one response each, drawn from the mix below
  int64_t rm_records = 2000;     // one response of each kind each, with r* (reward-model training)
  int64_t train_prompts = 512;   // prompts the SFT model samples K responses for (preference data)
  int64_t test_prompts = 200;    // held out: evaluation prompts and pairs (references with r*)
  int64_t min_items = 4, max_items = 7;  // list length (≥ 4 so BLEU's 4-grams exist)
  double p_harmful = 0.25, p_hard = 0.2, p_wrong = 0.15;  // SFT mix; the rest is best
  // The harm penalty in rm.jsonl's rewards (the reward model's training labels): r* itself by default (4).
  // A small value, e.g. 0.1, ranks a harmful right answer between the best and the near misses, so harmful
  // responses become *hard* negatives for the annotating reward model, as in the paper; evaluation keeps r*.
  double rm_harm_penalty = kHarmPenalty;
  // The decoder written to base/ (Llama architecture, random init): a byte-level vocabulary of 259.
  int64_t hidden_size = 64, layers = 2, heads = 4, kv_heads = 2, intermediate_size = 192;
  double init_std = 0.05;
};

// Reads [task] (kind = "synthetic" and the fields above); ConfigError for unknown keys.
SynthTaskConfig read_synth_task_config(const Config& c);

struct OracleScore {
  double reward = 0;  // r*(x, y)
  bool harmful = false;
  bool exact = false;  // y is the target (harmless and every position right)
};

// r*(x, y) for a prompt of this language; InputError when `prompt` is not one.
OracleScore oracle_reward(const std::string& prompt, const std::string& response);

// The files of one task under `dir`:
//   tokenizer/   tokenizer.json (byte-level BPE: 256 byte tokens, no merges, ByteLevel pre-tokenizer and
//                decoder; <|endoftext|> <|im_start|> <|im_end|>) + tokenizer_config.json (chatml, eos <|im_end|>)
//   base/        config.json + model.safetensors (random init) + the tokenizer files
//   sft.jsonl    mixed corpus, one response per prompt
//   rm.jsonl     ranked lists {best, hard, harmful, wrong} with r* as rewards (harm penalty: rm_harm_penalty)
//   train.jsonl  prompts for sampling (with their four reference responses and r*)
//   test.jsonl   held-out prompts, same layout (BLEU reference = best, margin pair = best vs harmful)
// Prompts are raw text (rendered verbatim); responses end with <|im_end|> (the chatml suffix = eos).
void write_synth_task(const SynthTaskConfig& c, const std::string& dir);

// The tokenizer.json text described above (exposed for tests).
std::string byte_level_tokenizer_json();

}  // namespace hps::demo

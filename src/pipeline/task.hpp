// Tasks a pipeline writes itself instead of reading a policy and data from disk: `[task] kind = "NAME"`.
// The pipeline knows a task only through this interface; whoever runs it hands in the kinds it offers (the CLI
// passes src/demo's "synthetic" task), so the dependency points from the task to the pipeline, not back.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "core/config.hpp"
#include "eval/evaluate.hpp"

namespace hps::pipeline {

// r*(x, y) of a task with an exact reward; `prompt` as the test file's ranked record holds it (a text or a
// list of messages). Evaluation adds the oracle columns when a task has one.
using Oracle = decltype(eval::EvalJob::oracle);

// Where a written task's files are (every path inside the folder the task was written into).
struct TaskFiles {
  std::string policy;       // the starting policy: an HF model folder
  std::string tokenizer;    // its tokenizer folder
  std::string chat_format;  // how prompts render ("" = from the tokenizer's chat_template)
  std::string sft_data;     // SFT corpus
  std::string prompts;      // prompts the SFT model samples K responses for
  std::string reward_data;  // reward-model training data
  std::string test;         // held-out prompts with reference responses (evaluation prompts and test set)
};

// One task, its [task] table already read and checked.
struct TaskRecipe {
  // Writes the task for `seed` into `dir` (the `task` stage; deterministic from the seed).
  std::function<void(uint64_t seed, const std::string& dir)> write;
  // Where the files of the task written into `dir` are.
  std::function<TaskFiles(const std::string& dir)> files;
  Oracle oracle;  // empty: no exact reward
};

// kind → reads the [task] table of a pipeline config (ConfigError for unknown keys and bad values) and
// returns the task.
using TaskKinds = std::map<std::string, std::function<TaskRecipe(const Config& cfg)>, std::less<>>;

}  // namespace hps::pipeline

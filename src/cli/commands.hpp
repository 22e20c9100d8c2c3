// `hps` subcommands. Each registers itself on the CLI11 app and returns the function to run.
// Exceptions propagate to main(), the only place that catches them.
#pragma once

#include <CLI/CLI.hpp>
#include <c10/core/Device.h>

#include "core/config.hpp"
#include "model/decoder.hpp"
#include "train/train_config.hpp"

#include <functional>
#include <string>
#include <vector>

namespace hps::cli {

using Action = std::function<int()>;
struct Command {
  CLI::App* app;
  Action run;
  bool data_parallel = false;  // runs under torchrun as a process group (hps train | sft | train-rm)
};

// `hps demo [--config FILE] [--key=value ...]`: the embedded default job (loss demo for now).
Command add_loss_demo_command(CLI::App& app);
Command add_demo_command(CLI::App& app);  // the embedded pipeline job (train_commands.cpp)

// `hps model inspect DIR` and `hps model export --model DIR [--adapter DIR] [--merge] --out DIR`.
Command add_model_command(CLI::App& app);
// `hps download ORG/NAME[@REV] [--revision R] [--include GLOB ...]`: into the Hugging Face cache.
Command add_download_command(CLI::App& app);
// `hps logprobs --model DIR [--adapter DIR] --data FILE --out FILE`.
Command add_logprobs_command(CLI::App& app);

// `hps tokenize --tokenizer DIR (--text S | --file F) [--decode] [--count]`.
Command add_tokenize_command(CLI::App& app);
// `hps train | sft | train-rm --config FILE [--resume] [--key=value ...]`.
Command add_train_command(CLI::App& app, train::Task task);
// `hps pipeline --config FILE [--key=value ...]` (or `hps pipeline FILE ...`).
Command add_pipeline_command(CLI::App& app);
// `hps generate --model DIR --data FILE --out FILE [--n K] [--temperature T] …`.
Command add_generate_command(CLI::App& app);
// `hps score --model RM --data FILE --out FILE`.
Command add_score_command(CLI::App& app);
// `hps eval --generations FILE [--baseline FILE] [--test FILE] [--policy DIR --reference DIR] --out DIR`.
Command add_eval_command(CLI::App& app);
// `hps report --run NAME=DIR ... --out DIR`.
Command add_report_command(CLI::App& app);
// `hps data inspect FILE [--tokenizer DIR]`.
Command add_data_command(CLI::App& app);

// Model, tokenizer and adapter options: a local folder, or a hub id "org/name[@revision]" replaced by its
// snapshot folder in the Hugging Face cache (io/hf_hub.hpp); `hps download` fetches one that is not cached.
const CLI::Validator& model_ref();

// "cpu", "cuda", "cuda:1" → a device; UsageError when CUDA is asked for and absent.
at::Device parse_device(const std::string& name);

// A model as the command-line tools load it: --device, --dtype ("" = the checkpoint's) and an optional
// PEFT --adapter ("" = none).
// "rank 1 of 2: " in a process group, "" otherwise.
std::string rank_prefix();

model::Decoder load_model_for_cli(const std::string& dir, const std::string& adapter, const std::string& device,
                                  const std::string& dtype);

// The TOML file at `path` (defaults when empty) with the `--key=value` extras applied on top.
Config load_config(const std::string& path, const std::vector<std::string>& extras);

// Overrides left over after CLI11 parsing: every `--key=value` (or `--key value`) argument.
std::vector<std::string> collect_overrides(const std::vector<std::string>& extras);

}  // namespace hps::cli

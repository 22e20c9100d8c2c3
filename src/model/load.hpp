// Loading and saving whole models in Hugging Face layout (config.json + safetensors).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "model/decoder.hpp"

namespace hps::model {

struct LoadOptions {
  at::Device device = at::kCPU;
  std::optional<at::ScalarType> dtype;  // default: the dtype of the checkpoint's embedding tensor
};

// Reads config.json and the weights; every expected tensor must be present with the expected shape, and
// every tensor in the checkpoint must be used (except rotary inv_freq buffers older exports contain).
Decoder load_model(const std::string& dir, const LoadOptions& opts = {});
// load_model plus, when `adapter` is not empty, the PEFT LoRA adapter in that folder applied on top.
Decoder load_policy(const std::string& dir, const std::string& adapter, const LoadOptions& opts = {});

// A model with random weights (normal(0, std), norms 1) for benchmarks and tests.
Decoder random_model(const ModelConfig& c, at::Device device, at::ScalarType dtype, double std = 0.02,
                     uint64_t seed = 0);

// Writes config.json (the source config with "dtype" updated) and the base weights (without LoRA tensors)
// to `dir`.
void save_model(const Decoder& d, const nlohmann::json& config_json, const std::string& dir,
                uint64_t max_shard_bytes = 5'000'000'000ULL);

// The torch dtype for a transformers dtype name ("bfloat16", "float16", "float32") and back.
at::ScalarType parse_dtype(const std::string& name);
std::string dtype_to_hf(at::ScalarType t);

// What a saved model or adapter needs beside its weights for transformers to load and prompt it: the tokenizer
// files of `tokenizer_dir` (tokenizer.json, tokenizer_config.json, special_tokens_map.json, chat_template.jinja,
// those present) and, with `model_dir`, its generation_config.json. Returns the names copied.
std::vector<std::string> copy_companion_files(const std::string& tokenizer_dir, const std::string& model_dir,
                                              const std::string& out);

}  // namespace hps::model

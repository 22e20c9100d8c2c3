// A Hugging Face weight folder: model.safetensors, or shards listed by model.safetensors.index.json.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.hpp"

namespace hps::io {

class Checkpoint {
 public:
  // Opens `dir/<stem>.safetensors` or `dir/<stem>.safetensors.index.json` (stem "model" for models,
  // "adapter_model" for PEFT adapters). Every shard is validated; every tensor the index names must be in
  // the shard it names, and a shard may hold no tensor the index does not name.
  static Checkpoint open(const std::string& dir, const std::string& stem = "model");

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  at::Tensor get(const std::string& name) const;
  const std::vector<SafetensorsFile>& files() const { return files_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor name → index into files_
};

// Writes tensors as `dir/model.safetensors`, or as shards of at most `max_shard_bytes` with an index
// (names model-0000i-of-0000n.safetensors, as transformers does) when they do not fit in one.
void save_checkpoint(const std::string& dir, const std::map<std::string, at::Tensor>& tensors,
                     uint64_t max_shard_bytes = 5'000'000'000ULL, const std::string& stem = "model");

}  // namespace hps::io

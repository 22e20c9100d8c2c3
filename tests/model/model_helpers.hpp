// Fixture access for the model tests: tiny transformers/PEFT models under tests/fixtures/models
// (tools/fixtures/make_model_fixtures.py) and the outputs transformers produced for them.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>

#include "io/safetensors.hpp"
#include "test_util.hpp"

namespace hps::test {

inline std::string model_dir(const std::string& name) { return fixtures_dir() + "/models/" + name; }

// expected.safetensors of a fixture folder: input_ids, attention_mask, position_ids, response_mask and the
// outputs (logits, seq_logp, seq_count or scores).
inline std::map<std::string, at::Tensor> expected(const std::string& name) {
  auto f = io::SafetensorsFile::open(model_dir(name) + "/expected.safetensors");
  std::map<std::string, at::Tensor> out;
  for (const auto& t : f.tensors()) out[t.name] = f.get(t.name).clone();
  return out;
}

// Max |a - b| over the real-token positions of [B, T, ...] tensors (padding outputs are never used).
inline double max_err_on_real(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  at::Tensor keep = mask.to(at::kBool);
  return (a.to(at::kDouble).index({keep}) - b.to(at::kDouble).index({keep})).abs().max().item<double>();
}

}  // namespace hps::test

// LoRA (Hu et al., 2021) on the decoder's linear layers, stored and loaded in PEFT's format.
//
//   y = x W^T + b + s · (dropout(x) A^T) B^T,   A: [r, in], B: [out, r],   s = alpha / r  (rsLoRA: alpha / √r)
//
// PEFT layout: adapter_config.json + adapter_model.safetensors with tensors named
// "base_model.model.<module>.lora_A.weight" / "...lora_B.weight" (<module> = model.layers.i.self_attn.q_proj …).
// The reference policy during LoRA training is the same Decoder with state.lora_enabled = false.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/decoder.hpp"

namespace hps::model {

struct LoraConfig {
  int64_t rank = 8;
  double alpha = 16.0;
  double dropout = 0.05;
  std::vector<std::string> targets{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  bool rslora = false;
  std::string target_regex;  // PEFT's string form of target_modules (full match); empty: use `targets`
  std::string base_model;    // recorded as base_model_name_or_path

  double scale() const;
};

// The seven projection names LoRA may target.
const std::vector<std::string>& lora_target_names();

// Adds fresh adapters as PEFT initializes them: A ~ kaiming-uniform(a=√5) = U(±1/√in), B = 0, so the
// model is unchanged until B moves. Adapters are trainable, base weights frozen.
void add_lora(Decoder& d, const LoraConfig& cfg, uint64_t seed = 0);

// Reads adapter_config.json; rejects PEFT options hps does not implement (DoRA, fan_in_fan_out, bias
// training, rank/alpha patterns, modules_to_save, layer selection) with the field named.
LoraConfig read_lora_config(const std::string& adapter_dir);
// Loads a PEFT adapter into d (every tensor must be used, every targeted layer filled); returns its config.
LoraConfig load_lora(Decoder& d, const std::string& adapter_dir);
// Writes adapter_config.json + adapter_model.safetensors in PEFT's layout.
void save_lora(const Decoder& d, const LoraConfig& cfg, const std::string& adapter_dir);
// W += s · B A for every adapted layer, then removes the adapters.
void merge_lora(Decoder& d);

}  // namespace hps::model

// `hps train-rm` from a causal LM: the model becomes a sequence classifier as transformers'
// AutoModelForSequenceClassification makes one from such a checkpoint, and is saved as one.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/decoder.hpp"

namespace hps::train {

// Drops d's LM head and adds a fresh 1-label score head, normal(0, 0.02) drawn from a CPU generator seeded
// with `seed`, in d's dtype on d's device; the architecture becomes *ForSequenceClassification. Returns the
// architecture it was made from. d must be a causal LM (`*ForCausalLM`).
std::string to_reward_model(model::Decoder& d, uint64_t seed);

// The config.json saved with a fully fine-tuned model: the base model's (`base_dir`/config.json); for a
// model made by to_reward_model also its architecture and the 1-label classifier fields transformers writes.
nlohmann::json saved_model_config(const std::string& base_dir, const model::Decoder& d, bool converted);

}  // namespace hps::train

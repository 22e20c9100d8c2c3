// README.md beside every trained model and adapter: a Hugging Face model card (YAML front matter the hub reads,
// then what was trained on what, and the settings that decide the result), so an output explains itself.
#pragma once

#include <cstdint>
#include <string>

#include "train/train_config.hpp"

namespace hps::train {

// `adapter`: a PEFT adapter (library_name peft) rather than a full model; `step` of `total` steps; `data_format`:
// the format the data was read as (data.format may say auto).
std::string model_card(const TrainConfig& cfg, bool adapter, int64_t step, int64_t total, const std::string& data_format);

}  // namespace hps::train

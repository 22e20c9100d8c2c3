#include "train/reward_model.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include "io/atomic_file.hpp"

namespace hps::train {

std::string to_reward_model(model::Decoder& d, uint64_t seed) {
  auto& c = d.config;
  const std::string from = c.architecture;
  const std::string lm = "ForCausalLM";
  c.architecture.replace(c.architecture.find(lm), lm.size(), "ForSequenceClassification");
  c.head = model::Head::sequence_classification;
  c.num_labels = 1;
  d.lm_head = at::Tensor();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  d.score = at::normal(0.0, 0.02, {1, c.hidden_size}, gen, at::kFloat).to(d.device(), d.dtype());  // score: [1, H]
  return from;
}

nlohmann::json saved_model_config(const std::string& base_dir, const model::Decoder& d, bool converted) {
  nlohmann::json j = io::read_json_file(base_dir + "/config.json");
  if (converted) {
    j["architectures"] = {d.config.architecture};
    j["num_labels"] = 1;
    j["id2label"] = {{"0", "LABEL_0"}};
    j["label2id"] = {{"LABEL_0", 0}};
  }
  return j;
}

}  // namespace hps::train

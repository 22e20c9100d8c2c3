#include "train/model_card.hpp"

#include <sstream>

#include "core/config_schema.hpp"
#include "prefs/loss_config.hpp"

namespace hps::train {

std::string model_card(const TrainConfig& cfg, bool adapter, int64_t step, int64_t total, const std::string& data_format) {
  const auto& l = cfg.loss;
  std::ostringstream o;
  const std::string pref(prefs::to_string(l.preference)), obj(prefs::to_string(l.objective));
  const std::string method = cfg.task == Task::preference ? pref + " × " + obj
                             : cfg.task == Task::sft      ? std::string("SFT")
                                                          : "reward model (" + pref + ")";
  o << "---\n"
    << "base_model: " << toml_string(cfg.model.path) << "\n"
    << "library_name: " << (adapter ? "peft" : "transformers") << "\n"
    << "tags:\n  - hps\n  - " << (cfg.task == Task::preference ? "preference-alignment" : cfg.task == Task::sft ? "sft" : "reward-model")
    << "\n---\n\n"
    << "# " << (adapter ? "LoRA adapter" : "Model") << " trained with hps " << HPS_VERSION << "\n\n"
    << "Method: " << method << " (Hard Preference Sampling toolkit, https://arxiv.org/abs/2502.14400), step " << step
    << " of " << total << ".\n\n"
    << "| setting | value |\n|---|---|\n"
    << "| base model | `" << cfg.model.path << "` |\n"
    << "| data | `" << cfg.data.path << "` (format " << data_format << ") |\n";
  if (cfg.task != Task::sft) o << "| loss | " << method << ", β " << l.beta << " |\n";
  if (cfg.task == Task::preference && l.preference == prefs::Preference::hps)
    o << "| γ schedule | " << prefs::to_string(cfg.gamma.kind) << " " << cfg.gamma.start << " → " << cfg.gamma.end << " |\n";
  o << "| learning rate | " << cfg.train.lr << " (" << to_string(cfg.train.schedule) << ", warmup " << cfg.train.warmup_ratio << ") |\n"
    << "| prompts per step | " << cfg.train.batch_prompts << " × " << cfg.train.grad_accum << " accumulation |\n"
    << "| lengths | prompt ≤ " << cfg.data.max_prompt_length << ", prompt + response ≤ " << cfg.data.max_length << " tokens |\n";
  if (cfg.use_lora) o << "| LoRA | rank " << cfg.lora.rank << ", α " << cfg.lora.alpha << ", dropout " << cfg.lora.dropout << " |\n";
  o << "| seed | " << cfg.train.seed << " |\n\n"
    << "Every setting: `trainer_state.json` of the checkpoint holds the full configuration.\n";
  return o.str();
}

}  // namespace hps::train

#include "train/trainer_state.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <map>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/json_text.hpp"
#include "io/safetensors.hpp"
#include "model/load.hpp"
#include "model/lora.hpp"
#include "train/model_card.hpp"
#include "train/run_checkpoint.hpp"

namespace hps::train {

using nlohmann::json;

json compat_fields(const TrainConfig& c, int64_t world_size) {
  const auto& l = c.loss;
  return {{"task", to_string(c.task)},
          {"model.path", c.model.path},
          {"lora.enabled", c.use_lora},
          {"lora.rank", c.lora.rank},
          {"lora.alpha", c.lora.alpha},
          {"lora.dropout", c.lora.dropout},
          {"lora.rslora", c.lora.rslora},
          {"lora.targets", c.lora.targets},
          {"data.path", c.data.path},
          {"data.max_prompt_length", c.data.max_prompt_length},
          {"data.max_length", c.data.max_length},
          {"loss.preference", std::string(prefs::to_string(l.preference))},
          {"loss.objective", std::string(prefs::to_string(l.objective))},
          {"loss.beta", l.beta},
          {"loss.ties", std::string(prefs::to_string(l.ties))},
          {"loss.pair_rule", std::string(prefs::to_string(l.pair_rule))},
          {"loss.n_factor", std::string(prefs::to_string(l.n_factor))},
          {"loss.label_smoothing", l.label_smoothing},
          {"loss.robust", l.robust},
          {"loss.exo_epsilon", l.exo_epsilon},
          {"loss.simpo_margin", l.simpo_margin},
          {"loss.rdpo_alpha", l.rdpo_alpha},
          {"loss.multi_preferred", l.multi_preferred},
          {"loss.multi_lambda", l.multi_lambda},
          {"gamma.schedule", std::string(prefs::to_string(c.gamma.kind))},
          {"gamma.start", c.gamma.start},
          {"gamma.end", c.gamma.end},
          {"gamma.interval", c.gamma.interval},
          {"rm.margin", c.rm_margin},
          {"train.global_batch_prompts", c.train.batch_prompts * world_size},
          {"train.grad_accum", c.train.grad_accum},
          {"train.seed", c.train.seed},
          {"train.max_steps", c.train.max_steps},
          {"train.epochs", c.train.epochs}};
}

namespace {

// Settings a resumed run may change — lowering the learning rate after a loss spike is common practice —
// each change said in the log, never silent.
json tunable_fields(const TrainConfig& c) {
  return {{"train.lr", c.train.lr},
          {"train.schedule", to_string(c.train.schedule)},
          {"train.warmup_ratio", c.train.warmup_ratio},
          {"train.beta1", c.train.adamw.beta1},
          {"train.beta2", c.train.adamw.beta2},
          {"train.eps", c.train.adamw.eps},
          {"train.weight_decay", c.train.adamw.weight_decay},
          {"train.max_grad_norm", c.train.max_grad_norm}};
}

// The generators a resumed run must continue: torch's CPU generator (LoRA dropout, initialization) and, on a
// GPU, its CUDA generator. (The selection draws are a function of seed, step and prompt: nothing to save.)
void save_rng(const std::string& path, const at::Device& device) {
  std::map<std::string, at::Tensor> rng{{"torch_cpu", at::detail::getDefaultCPUGenerator().get_state()}};
  if (device.is_cuda()) rng["torch_cuda"] = at::globalContext().defaultGenerator(device).get_state();
  io::save_safetensors(path, rng);
}

void restore_rng(const std::string& path, const at::Device& device) {
  auto r = io::SafetensorsFile::open(path);
  at::Generator cpu = at::detail::getDefaultCPUGenerator();  // a handle: set_state reaches the global one
  cpu.set_state(r.get("torch_cpu").clone());
  if (device.is_cuda() && r.contains("torch_cuda")) {
    at::Generator cuda = at::globalContext().defaultGenerator(device);
    cuda.set_state(r.get("torch_cuda").clone());
  }
}

void check_compatible(const json& state, const TrainConfig& cfg, const RunState& s, const std::string& dir,
                      std::ostream& log) {
  const json now = compat_fields(cfg, s.world_size);
  const json& compat = state.value("compat", json::object());
  for (auto it = now.begin(); it != now.end(); ++it) {
    if (!compat.contains(it.key())) continue;  // a checkpoint of an older hps did not record it
    if (compat.at(it.key()) != it.value())
      throw ConfigError("cannot resume from " + dir + ": " + it.key() + " was " + io::json_excerpt(compat.at(it.key())) +
                        ", now " + io::json_excerpt(it.value()) + " (use another train.out_dir for a different run)");
  }
  // The same paths must hold the same bytes: new data or new base weights under old names are another run.
  const json& inputs = state.value("inputs", json::object());
  for (const char* kind : {"data", "model"}) {
    if (!inputs.contains(kind)) continue;
    if (inputs.at(kind) != s.inputs.at(kind))
      throw ConfigError("cannot resume from " + dir + ": the " + (std::string(kind) == "data" ? "data file " + cfg.data.path
                                                                                         : "base model in " + cfg.model.path) +
                        " changed since the checkpoint (size:crc32 was " + io::json_excerpt(inputs.at(kind)) + ", now " +
                        io::json_excerpt(s.inputs.at(kind)) + "); use another train.out_dir for a different run");
  }
  const json tunable = tunable_fields(cfg), was = state.value("tunable", json::object());
  for (auto it = tunable.begin(); it != tunable.end(); ++it)
    if (was.contains(it.key()) && was.at(it.key()) != it.value())
      log << "resuming with " << it.key() << " = " << it.value().dump() << " (the checkpoint ran with "
          << was.at(it.key()).dump() << ")\n";
}

}  // namespace

void save_trainer_state(const TrainConfig& cfg, const std::string& config_text, const json& model_config,
                        int64_t total, const RunState& s, std::ostream& log) {
  write_checkpoint(cfg.train.out_dir, s.step, [&](const std::string& dir) {
    // The weights, and what transformers needs to load and prompt them: tokenizer files, chat template,
    // generation config (a full model), and a model card.
    const std::string out = dir + (cfg.use_lora ? "/adapter" : "/model");
    if (cfg.use_lora) {
      model::save_lora(s.policy, cfg.lora, out);
      model::copy_companion_files(cfg.model.tokenizer, "", out);
    } else {
      model::save_model(s.policy, model_config, out);
      model::copy_companion_files(cfg.model.tokenizer, cfg.model.path, out);
    }
    io::write_file_atomic(out + "/README.md", [&](std::ostream& o) { o << model_card(cfg, cfg.use_lora, s.step, total, s.data_format); });
    io::save_safetensors(dir + "/optimizer.safetensors", s.opt->state());
    save_rng(dir + "/rng.safetensors", s.policy.device());
    json state = {{"step", s.step},
                  {"total_steps", total},
                  {"epoch", s.loader.epoch()},
                  {"position", s.loader.position()},
                  {"bad_steps", s.bad_steps},
                  {"compat", compat_fields(cfg, s.world_size)},
                  {"tunable", tunable_fields(cfg)},
                  {"inputs", s.inputs},
                  {"config", config_text}};
    io::write_json_file(dir + "/trainer_state.json", state);
  }, cfg.train.keep_last);
  log << "saved " << checkpoint_path(cfg.train.out_dir, s.step) << "\n";
}

void restore_trainer_state(const std::string& dir, const TrainConfig& cfg, int64_t total, const RunState& s,
                           std::ostream& log) {
  verify_checkpoint(dir);
  const std::string state_path = dir + "/trainer_state.json";
  const json state = io::read_json_file(state_path);
  int64_t step = 0, bad_steps = 0, epoch = 0, position = 0;
  try {
    step = state.at("step").get<int64_t>(), bad_steps = state.at("bad_steps").get<int64_t>();
    epoch = state.at("epoch").get<int64_t>(), position = state.at("position").get<int64_t>();
  } catch (const json::exception& e) {
    throw InputError(state_path + ": step, bad_steps, epoch and position must be integers (" + e.what() + ")");
  }
  if (step < 1 || step > total)
    throw InputError(state_path + ": field 'step' is " + std::to_string(step) + ", outside [1, " +
                     std::to_string(total) + "] (this run's steps)");
  if (bad_steps < 0 || epoch < 0 || position < 0)
    throw InputError(state_path + ": bad_steps, epoch and position must be ≥ 0");
  check_compatible(state, cfg, s, dir, log);
  const at::Device device = s.policy.device();
  if (cfg.use_lora) {
    model::load_lora(s.policy, dir + "/adapter");
    s.policy.set_requires_grad(false, true);
  } else {
    model::Decoder m = model::load_model(dir + "/model", {device, s.policy.dtype()});
    m.set_requires_grad(true, true);
    m.state.grad_checkpointing = s.policy.state.grad_checkpointing;
    s.policy = std::move(m);
  }
  s.opt = std::make_unique<AdamW>(s.policy.trainable_parameters(), cfg.train.adamw);
  auto f = io::SafetensorsFile::open(dir + "/optimizer.safetensors");
  std::map<std::string, at::Tensor> opt_state;
  for (const auto& t : f.tensors()) opt_state[t.name] = f.get(t.name);
  s.opt->load_state(opt_state);
  restore_rng(dir + "/rng.safetensors", device);
  s.step = step;
  s.bad_steps = bad_steps;
  s.loader.seek(epoch, static_cast<size_t>(position));
}

}  // namespace hps::train

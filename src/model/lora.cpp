#include "model/lora.hpp"

#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/json_text.hpp"

namespace hps::model {

using nlohmann::json;

namespace {

const std::string kPeftPrefix = "base_model.model.";

// PEFT matches a list entry against the end of the module name, a string as a full regex.
struct TargetMatcher {
  std::vector<std::string> names;
  std::optional<std::regex> regex;
  bool matches(const std::string& module) const {
    if (regex) return std::regex_match(module, *regex);
    for (const auto& t : names)
      if (module == t || module.ends_with("." + t)) return true;
    return false;
  }
};

// Every adaptable module: full name ("model.layers.0.self_attn.q_proj") and its Proj.
std::vector<std::pair<std::string, Proj*>> modules(Decoder& d) {
  std::vector<std::pair<std::string, Proj*>> out;
  for (size_t i = 0; i < d.layers.size(); ++i)
    for (auto& [name, p] : layer_projs(d.layers[i])) out.emplace_back("model.layers." + std::to_string(i) + "." + name, p);
  return out;
}

}  // namespace

double LoraConfig::scale() const { return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / rank; }

const std::vector<std::string>& lora_target_names() {
  static const std::vector<std::string> names{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                              "down_proj"};
  return names;
}

void add_lora(Decoder& d, const LoraConfig& cfg, uint64_t seed) {
  if (cfg.rank <= 0) throw ConfigError("lora.rank must be > 0, found " + std::to_string(cfg.rank));
  if (cfg.dropout < 0 || cfg.dropout >= 1) throw ConfigError("lora.dropout must be in [0, 1)");
  for (const auto& t : cfg.targets)
    if (std::find(lora_target_names().begin(), lora_target_names().end(), t) == lora_target_names().end())
      throw ConfigError("lora.targets: unknown module '" + t + "' (expected q_proj, k_proj, v_proj, o_proj, "
                        "gate_proj, up_proj, down_proj)");
  TargetMatcher match{cfg.targets, std::nullopt};
  // A rank above a projection's smaller side adds nothing a full update would not, and a huge one only
  // exhausts memory: refuse it before allocating (PEFT would try).
  for (auto& [name, p] : modules(d))
    if (match.matches(name) && cfg.rank > std::min(p->weight.size(0), p->weight.size(1)))
      throw ConfigError("lora.rank = " + std::to_string(cfg.rank) + " exceeds " + name + "'s smaller dimension " +
                        std::to_string(std::min(p->weight.size(0), p->weight.size(1))) + " [" +
                        std::to_string(p->weight.size(0)) + ", " + std::to_string(p->weight.size(1)) + "]");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  d.set_requires_grad(false, false);
  for (auto& [name, p] : modules(d)) {
    if (!match.matches(name)) continue;
    const int64_t in = p->weight.size(1), out = p->weight.size(0);
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    at::Tensor a = at::empty({cfg.rank, in}, at::kFloat).uniform_(-bound, bound, gen);
    p->lora_a = a.to(d.device(), d.dtype()).set_requires_grad(true);
    p->lora_b = at::zeros({out, cfg.rank}, p->weight.options()).set_requires_grad(true);
    p->lora_scale = cfg.scale();
  }
  d.lora_dropout = cfg.dropout;
}

LoraConfig read_lora_config(const std::string& adapter_dir) {
  const std::string path = adapter_dir + "/adapter_config.json";
  if (!io::file_exists(path)) throw InputError(adapter_dir + ": no adapter_config.json (not a PEFT adapter folder)");
  const json j = io::read_json_file(path);
  auto fail = [&](const std::string& key, const std::string& rule) -> void {
    throw InputError(path + ": field '" + key + "': " + rule);
  };
  if (!j.is_object()) throw InputError(path + ": expected a JSON object");
  // Optional fields of a given JSON type (nlohmann's value() throws an unnamed type_error on a mismatch).
  auto typed = [&](const char* key, bool ok) {
    if (j.contains(key) && !j[key].is_null() && !ok) fail(key, "wrong type, found " + io::json_excerpt(j[key]));
  };
  auto flag = [&](const char* key) {  // false when absent or null
    typed(key, j.contains(key) && j[key].is_boolean());
    return j.contains(key) && j[key].is_boolean() && j[key].get<bool>();
  };
  typed("peft_type", j.contains("peft_type") && j["peft_type"].is_string());
  if (j.contains("peft_type") && j["peft_type"].is_string() && j["peft_type"] != "LORA")
    fail("peft_type", "only LORA adapters are supported, found " + io::json_excerpt(j["peft_type"]));
  LoraConfig c;
  if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() <= 0)
    fail("r", "expected a positive integer");
  c.rank = j["r"].get<int64_t>();
  c.alpha = j.contains("lora_alpha") && j["lora_alpha"].is_number() ? j["lora_alpha"].get<double>() : 8.0;
  c.dropout = j.contains("lora_dropout") && j["lora_dropout"].is_number() ? j["lora_dropout"].get<double>() : 0.0;
  c.rslora = flag("use_rslora");
  if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
    c.base_model = j["base_model_name_or_path"].get<std::string>();
  // Options that change the math: refuse rather than compute something PEFT would not.
  if (flag("use_dora")) fail("use_dora", "DoRA adapters are not supported");
  if (flag("fan_in_fan_out")) fail("fan_in_fan_out", "must be false for Llama/Qwen2/Mistral");
  if (j.contains("bias") && j["bias"] != "none") fail("bias", "only \"none\" is supported, found " + io::json_excerpt(j["bias"]));
  if (flag("lora_bias")) fail("lora_bias", "LoRA bias terms are not supported");
  for (const char* k : {"rank_pattern", "alpha_pattern"})
    if (j.contains(k) && j[k].is_object() && !j[k].empty()) fail(k, "per-module ranks/alphas are not supported");
  for (const char* k : {"modules_to_save", "layers_to_transform", "target_parameters", "trainable_token_indices"})
    if (j.contains(k) && !j[k].is_null() && !(j[k].is_array() && j[k].empty()))
      fail(k, "not supported (found " + io::json_excerpt(j[k]) + ")");
  if (!j.contains("target_modules")) fail("target_modules", "required");
  const json& t = j["target_modules"];
  if (t.is_array()) {
    c.targets.clear();
    for (const auto& v : t) {
      if (!v.is_string()) fail("target_modules", "expected module names, found " + io::json_excerpt(v));
      c.targets.push_back(v.get<std::string>());
    }
  } else if (t == "all-linear") {
    c.targets = lora_target_names();
  } else if (t.is_string()) {
    c.target_regex = t.get<std::string>();
    c.targets.clear();
  } else {
    fail("target_modules", "expected a list of module names or a regex string");
  }
  return c;
}

LoraConfig load_lora(Decoder& d, const std::string& adapter_dir) {
  LoraConfig cfg = read_lora_config(adapter_dir);
  const io::Checkpoint ckpt = io::Checkpoint::open(adapter_dir, "adapter_model");
  TargetMatcher match{cfg.targets, std::nullopt};
  if (!cfg.target_regex.empty()) {
    try {
      match.regex = std::regex(cfg.target_regex);
    } catch (const std::regex_error& e) {
      throw InputError(adapter_dir + "/adapter_config.json: target_modules regex is invalid: " + e.what());
    }
  }
  std::set<std::string> used;
  int64_t adapted = 0;
  for (auto& [name, p] : modules(d)) {
    if (!match.matches(name)) continue;
    const std::string a_name = kPeftPrefix + name + ".lora_A.weight", b_name = kPeftPrefix + name + ".lora_B.weight";
    for (const auto& n : {a_name, b_name})
      if (!ckpt.contains(n)) throw InputError(adapter_dir + ": adapter targets " + name + " but lacks tensor '" + n + "'");
    at::Tensor a = ckpt.get(a_name), b = ckpt.get(b_name);
    const std::vector<int64_t> want_a{cfg.rank, p->weight.size(1)}, want_b{p->weight.size(0), cfg.rank};
    if (a.sizes() != at::IntArrayRef(want_a) || b.sizes() != at::IntArrayRef(want_b))
      throw InputError(adapter_dir + ": " + name + " lora_A " + c10::str(a.sizes()) + " / lora_B " +
                       c10::str(b.sizes()) + " do not fit rank " + std::to_string(cfg.rank) + " and base weight " +
                       c10::str(p->weight.sizes()));
    p->lora_a = a.to(d.device(), d.dtype());
    p->lora_b = b.to(d.device(), d.dtype());
    p->lora_scale = cfg.scale();
    used.insert(a_name);
    used.insert(b_name);
    ++adapted;
  }
  for (const auto& n : ckpt.names())
    if (!used.count(n))
      throw InputError(adapter_dir + ": adapter tensor '" + n + "' matches no targeted module of " +
                       d.config.architecture + " (wrong base model?)");
  if (adapted == 0) throw InputError(adapter_dir + ": target_modules match no module of the base model");
  d.lora_dropout = cfg.dropout;
  return cfg;
}

void save_lora(const Decoder& d, const LoraConfig& cfg, const std::string& adapter_dir) {
  std::map<std::string, at::Tensor> tensors;
  std::set<std::string> targets;
  for (size_t i = 0; i < d.layers.size(); ++i)
    for (const auto& [name, p] : layer_projs(d.layers[i])) {
      if (!p->lora_a.defined()) continue;
      const std::string full = kPeftPrefix + "model.layers." + std::to_string(i) + "." + name;
      tensors[full + ".lora_A.weight"] = p->lora_a;
      tensors[full + ".lora_B.weight"] = p->lora_b;
      targets.insert(name.substr(name.find('.') + 1));
    }
  if (tensors.empty()) throw InputError("save_lora: the model has no LoRA adapters");
  io::make_dirs(adapter_dir);
  io::save_checkpoint(adapter_dir, tensors, UINT64_MAX, "adapter_model");
  const json config = {
      {"peft_type", "LORA"},
      {"task_type", d.config.head == Head::causal_lm ? "CAUSAL_LM" : "SEQ_CLS"},
      {"base_model_name_or_path", cfg.base_model.empty() ? json(nullptr) : json(cfg.base_model)},
      {"r", cfg.rank},
      {"lora_alpha", cfg.alpha},
      {"lora_dropout", cfg.dropout},
      {"target_modules", cfg.target_regex.empty() ? json(std::vector<std::string>(targets.begin(), targets.end()))
                                                  : json(cfg.target_regex)},
      {"use_rslora", cfg.rslora},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"modules_to_save", nullptr},
      {"use_dora", false},
  };
  io::write_json_file(adapter_dir + "/adapter_config.json", config);
}

void merge_lora(Decoder& d) {
  c10::AutoGradMode no_grad(false);
  for (auto& l : d.layers)
    for (auto& [name, p] : layer_projs(l)) {
      if (!p->lora_a.defined()) continue;
      // Accumulate in fp32: a bf16 product added to bf16 weights loses the small update.
      at::Tensor delta = at::matmul(p->lora_b.to(at::kFloat), p->lora_a.to(at::kFloat)) * p->lora_scale;
      const bool rg = p->weight.requires_grad();
      p->weight = (p->weight.detach().to(at::kFloat) + delta).to(p->weight.scalar_type());
      p->weight.set_requires_grad(rg);
      p->lora_a = at::Tensor();
      p->lora_b = at::Tensor();
      p->lora_scale = 0.0;
    }
}

}  // namespace hps::model

#include "model/load.hpp"

#include <mutex>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/enum_names.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "model/lora.hpp"

namespace hps::model {

namespace {
// transformers' torch_dtype names first (what dtype_to_hf writes), then the accepted short forms.
constexpr EnumNames<at::ScalarType, 8> kDtypes{{{"float32", at::kFloat}, {"bfloat16", at::kBFloat16},
                                                {"float16", at::kHalf}, {"fp32", at::kFloat}, {"f32", at::kFloat},
                                                {"bf16", at::kBFloat16}, {"fp16", at::kHalf}, {"f16", at::kHalf}}};
}  // namespace

at::ScalarType parse_dtype(const std::string& name) { return parse_enum(name, "dtype", kDtypes); }

std::string dtype_to_hf(at::ScalarType t) {
  const std::string_view name = enum_name(t, kDtypes);
  if (name == "?") throw InputError(std::string("no transformers dtype name for ") + c10::toString(t));
  return std::string(name);
}

Decoder load_policy(const std::string& dir, const std::string& adapter, const LoadOptions& opts) {
  Decoder m = load_model(dir, opts);
  if (!adapter.empty()) load_lora(m, adapter);
  return m;
}

Decoder load_model(const std::string& dir, const LoadOptions& opts) {
  const ModelConfig cfg = read_model_config(dir);
  const io::Checkpoint ckpt = io::Checkpoint::open(dir, "model");
  Decoder d = make_skeleton(cfg);
  const at::ScalarType dtype = opts.dtype ? *opts.dtype : [&] {
    const std::string name = "model.embed_tokens.weight";
    if (!ckpt.contains(name)) throw InputError(dir + ": checkpoint has no '" + name + "'");
    return io::scalar_type_of(ckpt.info(name).dtype, dir);
  }();
  if (!at::isFloatingType(dtype)) throw InputError(dir + ": weights must be floating point");
  std::set<std::string> used;
  std::vector<std::string> missing;
  visit_weights(d, [&](const std::string& name, at::Tensor& t) {
    if (!ckpt.contains(name)) {
      missing.push_back(name);
      return;
    }
    at::Tensor w = ckpt.get(name);
    if (w.sizes() != t.sizes())
      throw InputError(dir + ": tensor '" + name + "' has shape " + c10::str(w.sizes()) + ", config.json implies " +
                       c10::str(t.sizes()));
    t = w.to(opts.device, dtype);
    used.insert(name);
  });
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 5; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 5) list += ", … (" + std::to_string(missing.size()) + " in all)";
    throw InputError(dir + ": checkpoint lacks tensors " + cfg.architecture + " needs: " + list);
  }
  if (cfg.tie_word_embeddings && d.lm_head.defined()) {
    d.lm_head = d.embed;
    used.insert("lm_head.weight");  // a tied checkpoint may still carry a copy; transformers ignores it
  }
  for (const auto& name : ckpt.names()) {
    if (used.count(name) || name.ends_with("rotary_emb.inv_freq")) continue;
    throw InputError(dir + ": checkpoint tensor '" + name + "' is not part of " + cfg.architecture +
                     " as configured (wrong architecture in config.json?)");
  }
  return d;
}

Decoder random_model(const ModelConfig& c, at::Device device, at::ScalarType dtype, double std, uint64_t seed) {
  Decoder d = make_skeleton(c);
  // Draw on the target device (a CPU draw of a 1B model takes seconds); seeded, so runs repeat.
  at::Generator gen = device.is_cuda() ? at::globalContext().defaultGenerator(device)
                                       : at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
  visit_weights(d, [&](const std::string& name, at::Tensor& t) {
    at::Tensor w = at::empty(t.sizes(), at::TensorOptions().device(device).dtype(dtype));
    if (name.ends_with("norm.weight")) w.fill_(1.0);
    else if (name.ends_with(".bias")) w.zero_();
    else w.normal_(0.0, std, gen);
    t = w;
  });
  if (c.tie_word_embeddings && d.lm_head.defined()) d.lm_head = d.embed;
  return d;
}

void save_model(const Decoder& d, const nlohmann::json& config_json, const std::string& dir,
                uint64_t max_shard_bytes) {
  io::make_dirs(dir);
  std::map<std::string, at::Tensor> tensors;
  visit_weights(d, [&](const std::string& name, const at::Tensor& t) {
    if (name.find(".lora_") == std::string::npos) tensors[name] = t;
  });
  io::save_checkpoint(dir, tensors, max_shard_bytes, "model");
  nlohmann::json cfg = config_json;
  cfg["dtype"] = dtype_to_hf(d.dtype());
  if (cfg.contains("torch_dtype")) cfg["torch_dtype"] = cfg["dtype"];
  io::write_json_file(dir + "/config.json", cfg);
}

std::vector<std::string> copy_companion_files(const std::string& tokenizer_dir, const std::string& model_dir,
                                              const std::string& out) {
  std::vector<std::string> copied;
  auto copy = [&](const std::string& from, const char* name) {
    if (from.empty() || !io::file_exists(from + "/" + name)) return;
    io::copy_file(from + "/" + name, out + "/" + name);
    copied.emplace_back(name);
  };
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"})
    copy(tokenizer_dir, f);
  copy(model_dir, "generation_config.json");
  return copied;
}

}  // namespace hps::model

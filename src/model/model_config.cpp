#include "model/model_config.hpp"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/enum_names.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/json_text.hpp"

namespace hps::model {

using nlohmann::json;

namespace {
constexpr EnumNames<Family, 3> kFamilies{{{"llama", Family::llama}, {"qwen2", Family::qwen2}, {"mistral", Family::mistral}}};
}  // namespace

const char* to_string(Family f) { return enum_name(f, kFamilies).data(); }  // the table's names are literals

namespace {

struct Reader {
  const json& j;
  std::string where;

  [[noreturn]] void fail(const std::string& key, const std::string& rule) const {
    throw InputError(where + ": field '" + key + "': " + rule);
  }
  int64_t get_int(const std::string& key, std::optional<int64_t> def = std::nullopt) const {
    if (!j.contains(key) || j[key].is_null()) {
      if (def) return *def;
      fail(key, "required integer is missing");
    }
    if (!j[key].is_number_integer()) fail(key, "expected an integer, found " + io::json_excerpt(j[key]));
    return j[key].get<int64_t>();
  }
  // In (0, most]: `most` lies far above any published model, so a typo'd size fails here, before the
  // model allocates for it (num_hidden_layers 200000000 asked for 23.5 GB).
  int64_t positive(const std::string& key, std::optional<int64_t> def = std::nullopt, int64_t most = int64_t{1} << 24) const {
    int64_t v = get_int(key, def);
    if (v <= 0 || v > most)
      fail(key, "must be in [1, " + std::to_string(most) + "], found " + std::to_string(v));
    return v;
  }
  double positive_number(const json& obj, const std::string& key, double def) const {
    const double v = get_double(obj, key, def);
    if (!(v > 0) || !std::isfinite(v)) fail(key, "must be a finite number > 0, found " + std::to_string(v));
    return v;
  }
  double get_double(const json& obj, const std::string& key, double def) const {
    if (!obj.contains(key) || obj[key].is_null()) return def;
    if (!obj[key].is_number()) fail(key, "expected a number, found " + io::json_excerpt(obj[key]));
    return obj[key].get<double>();
  }
  bool get_bool(const std::string& key, bool def) const {
    if (!j.contains(key) || j[key].is_null()) return def;
    if (!j[key].is_boolean()) fail(key, "expected true or false, found " + io::json_excerpt(j[key]));
    return j[key].get<bool>();
  }
  std::optional<int64_t> opt_int(const std::string& key) const {
    if (!j.contains(key) || j[key].is_null()) return std::nullopt;
    return get_int(key);
  }
};

RopeConfig parse_rope(const Reader& r) {
  RopeConfig rope;
  const json& j = r.j;
  rope.theta = r.positive_number(j, "rope_theta", 10000.0);
  // transformers 5 folds theta and scaling into rope_parameters; older configs use rope_scaling.
  const json* params = nullptr;
  std::string key;
  for (const char* k : {"rope_parameters", "rope_scaling"})
    if (j.contains(k) && !j[k].is_null()) {
      params = &j[k];
      key = k;
      break;
    }
  if (!params) return rope;
  if (!params->is_object()) r.fail(key, "expected an object, found " + io::json_excerpt(*params));
  rope.theta = r.positive_number(*params, "rope_theta", rope.theta);
  std::string type = "default";
  for (const char* k : {"rope_type", "type"})
    if (params->contains(k) && (*params)[k].is_string()) {
      type = (*params)[k].get<std::string>();
      break;
    }
  if (type == "default") return rope;
  if (type != "llama3")
    r.fail(key, "rope type '" + type + "' is not supported (supported: default, llama3)");
  rope.type = RopeType::llama3;
  rope.factor = r.get_double(*params, "factor", rope.factor);
  rope.low_freq_factor = r.get_double(*params, "low_freq_factor", rope.low_freq_factor);
  rope.high_freq_factor = r.get_double(*params, "high_freq_factor", rope.high_freq_factor);
  const json& original = params->value("original_max_position_embeddings", json());
  if (!original.is_number_integer() || original.get<int64_t>() <= 0)
    r.fail(key, "llama3 rope scaling needs original_max_position_embeddings, a positive integer");
  rope.original_max_position_embeddings = original.get<int64_t>();
  if (rope.factor <= 0 || rope.low_freq_factor <= 0 || rope.high_freq_factor <= rope.low_freq_factor)
    r.fail(key, "llama3 rope scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0");
  return rope;
}

}  // namespace

ModelConfig parse_model_config(const json& j, const std::string& where) {
  if (!j.is_object()) throw InputError(where + ": config must be a JSON object");
  Reader r{j, where};
  ModelConfig c;
  if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].size() != 1 ||
      !j["architectures"][0].is_string())
    r.fail("architectures", "expected a list with one architecture name");
  c.architecture = j["architectures"][0].get<std::string>();
  struct Arch {
    const char* name;
    Family family;
    Head head;
  };
  const Arch archs[] = {
      {"LlamaForCausalLM", Family::llama, Head::causal_lm},
      {"LlamaForSequenceClassification", Family::llama, Head::sequence_classification},
      {"Qwen2ForCausalLM", Family::qwen2, Head::causal_lm},
      {"Qwen2ForSequenceClassification", Family::qwen2, Head::sequence_classification},
      {"MistralForCausalLM", Family::mistral, Head::causal_lm},
      {"MistralForSequenceClassification", Family::mistral, Head::sequence_classification},
  };
  bool found = false;
  std::string names;
  for (const auto& a : archs) {
    names += std::string(names.empty() ? "" : ", ") + a.name;
    if (c.architecture == a.name) c.family = a.family, c.head = a.head, found = true;
  }
  if (!found) r.fail("architectures", "unsupported architecture '" + c.architecture + "' (supported: " + names + ")");

  c.vocab_size = r.positive("vocab_size");
  c.hidden_size = r.positive("hidden_size");
  c.intermediate_size = r.positive("intermediate_size");
  c.num_layers = r.positive("num_hidden_layers", std::nullopt, 4096);
  c.num_heads = r.positive("num_attention_heads", std::nullopt, 4096);
  c.num_kv_heads = r.positive("num_key_value_heads", c.num_heads, 4096);
  if (c.num_heads % c.num_kv_heads != 0)
    r.fail("num_key_value_heads", std::to_string(c.num_kv_heads) + " does not divide num_attention_heads " +
                                      std::to_string(c.num_heads));
  if (!j.contains("head_dim") || j["head_dim"].is_null()) {
    if (c.hidden_size % c.num_heads != 0)
      r.fail("hidden_size", "not divisible by num_attention_heads and no head_dim given");
    c.head_dim = c.hidden_size / c.num_heads;
  } else {
    c.head_dim = r.positive("head_dim", std::nullopt, 4096);
  }
  if (c.head_dim % 2 != 0) r.fail("head_dim", "rotary embeddings need an even head_dim");
  c.rms_norm_eps = r.positive_number(j, "rms_norm_eps", 1e-6);
  c.max_position_embeddings = r.positive("max_position_embeddings", 2048, int64_t{1} << 26);
  c.rope = parse_rope(r);
  c.tie_word_embeddings = r.get_bool("tie_word_embeddings", false);
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    r.fail("hidden_act", "only silu (SwiGLU) is supported, found " + io::json_excerpt(j["hidden_act"]));
  if (c.family == Family::llama) {
    c.attention_bias = r.get_bool("attention_bias", false);
    c.mlp_bias = r.get_bool("mlp_bias", false);
    if (j.contains("pretraining_tp") && j["pretraining_tp"].is_number_integer() && j["pretraining_tp"] != 1)
      r.fail("pretraining_tp", "only 1 is supported");
  }
  if (c.family == Family::qwen2) c.qkv_bias = true;

  c.window.assign(static_cast<size_t>(c.num_layers), 0);
  const auto sliding = r.opt_int("sliding_window");
  if (c.family == Family::mistral && sliding) c.window.assign(static_cast<size_t>(c.num_layers), *sliding);
  if (c.family == Family::qwen2 && r.get_bool("use_sliding_window", false)) {
    if (!sliding) r.fail("sliding_window", "use_sliding_window is true but sliding_window is not set");
    // transformers 5 lists the kind per layer; older configs: layers ≥ max_window_layers slide.
    if (j.contains("layer_types") && j["layer_types"].is_array()) {
      if (static_cast<int64_t>(j["layer_types"].size()) != c.num_layers)
        r.fail("layer_types", "expected " + std::to_string(c.num_layers) + " entries");
      for (int64_t i = 0; i < c.num_layers; ++i) {
        const json& t = j["layer_types"][static_cast<size_t>(i)];
        if (t == "sliding_attention") c.window[static_cast<size_t>(i)] = *sliding;
        else if (t != "full_attention") r.fail("layer_types", "unknown layer type " + io::json_excerpt(t));
      }
    } else {
      const int64_t first = r.get_int("max_window_layers", c.num_layers);
      for (int64_t i = first; i < c.num_layers; ++i) c.window[static_cast<size_t>(i)] = *sliding;
    }
  }
  for (int64_t w : c.window)
    if (w < 0) r.fail("sliding_window", "must be positive");

  if (c.head == Head::sequence_classification) {
    if (j.contains("num_labels")) c.num_labels = r.positive("num_labels");
    else if (j.contains("id2label") && j["id2label"].is_object()) c.num_labels = static_cast<int64_t>(j["id2label"].size());
    else c.num_labels = 2;  // transformers' PretrainedConfig default
  }
  // Special ids index the embedding table: outside it they fail deep inside a forward pass, unnamed.
  auto token_id = [&](const std::string& key, const json& v) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= c.vocab_size)
      r.fail(key, "a token id must be an integer in [0, vocab_size = " + std::to_string(c.vocab_size) + "), found " +
                      io::json_excerpt(v));
    return v.get<int64_t>();
  };
  for (auto [key, out] : {std::pair{"pad_token_id", &c.pad_token_id}, std::pair{"bos_token_id", &c.bos_token_id}})
    if (j.contains(key) && !j[key].is_null()) *out = token_id(key, j[key]);
  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    const json& e = j["eos_token_id"];
    if (e.is_array())
      for (const auto& v : e) c.eos_token_ids.push_back(token_id("eos_token_id", v));
    else
      c.eos_token_ids.push_back(token_id("eos_token_id", e));
  }
  for (const char* k : {"dtype", "torch_dtype"})
    if (j.contains(k) && j[k].is_string()) {
      c.torch_dtype = j[k].get<std::string>();
      break;
    }
  return c;
}

ModelConfig read_model_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  if (!io::file_exists(path)) throw InputError(model_dir + ": no config.json (is this a Hugging Face model folder?)");
  return parse_model_config(io::read_json_file(path), path);
}

}  // namespace hps::model

// config.json → a plain model config (Llama, Qwen2, Mistral and their *ForSequenceClassification variants).
//
// Both config styles on the Hub are read: `rope_theta` + `rope_scaling` (transformers ≤ 4) and
// `rope_parameters` (transformers 5). Anything the decoder would silently compute differently from
// transformers (an unknown architecture, rope type, activation, …) is rejected with the field named.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hps::model {

enum class Family { llama, qwen2, mistral };
enum class Head { causal_lm, sequence_classification };
enum class RopeType { default_, llama3 };

struct RopeConfig {
  RopeType type = RopeType::default_;
  double theta = 10000.0;
  // llama3 scaling (used only when type == llama3)
  double factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // e.g. "Qwen2ForCausalLM"
  Family family = Family::llama;
  Head head = Head::causal_lm;
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_layers = 0;
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  int64_t max_position_embeddings = 2048;
  bool attention_bias = false;  // q/k/v/o bias (Llama's attention_bias; Qwen2 always has q/k/v bias)
  bool qkv_bias = false;        // q/k/v only (Qwen2)
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  // Sliding-window attention per layer (0 = full attention): Mistral's sliding_window, Qwen2's layer_types.
  std::vector<int64_t> window;
  int64_t num_labels = 1;  // sequence classification
  std::optional<int64_t> pad_token_id, bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";  // dtype the checkpoint declares

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
};

// Parses a config.json value; `where` names the file in errors.
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& where);
ModelConfig read_model_config(const std::string& model_dir);

const char* to_string(Family f);

}  // namespace hps::model

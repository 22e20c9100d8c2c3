// Llama / Qwen2 / Mistral decoder, written as plain tensors and functions (no nn::Module): the weights are
// named exactly as in the Hugging Face checkpoint, the forward pass reads top to bottom.
//
//   h = embed[ids]                                              // h: [B, T, H]
//   for each layer:  h += o_proj(attn(rope(q(norm(h))), rope(k(norm(h))), v(norm(h))))
//                    h += down(silu(gate(norm(h))) * up(norm(h)))
//   h = norm(h);  logits = h @ lm_head^T  (or score head on the last non-pad token)
//
// Numerics follow transformers: RMSNorm in fp32 then cast back before the weight multiply; rotary cos/sin
// in fp32 cast to the activation dtype; attention through at::scaled_dot_product_attention.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/model_config.hpp"

namespace hps::model {

// A linear layer y = x W^T + b, optionally with a LoRA adapter: + scale · B(A(dropout(x))).
struct Proj {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined
  at::Tensor lora_a;  // [r, in] or undefined
  at::Tensor lora_b;  // [out, r]
  double lora_scale = 0.0;
};

struct Layer {
  at::Tensor input_norm, post_norm;  // [H]
  Proj q, k, v, o;                    // q: [Hq·D, H], k/v: [Hkv·D, H], o: [H, Hq·D]
  Proj gate, up, down;                // gate/up: [I, H], down: [H, I]
};

// Incremental decoding state: keys/values of every layer for the tokens seen so far.
struct KVCache {
  std::vector<at::Tensor> k, v;  // per layer: [B, Hkv, capacity, D]
  at::Tensor key_valid;          // [B, capacity] bool: slot holds a real (non-pad) token
  at::Tensor seen;               // [B] int64: real tokens so far (= next position id)
  int64_t length = 0;            // slots used
  int64_t capacity = 0;
  // A shared prompt cache (model/prefix_cache.hpp): the prompts' K/V held once, read by every row of their
  // prompt; k/v above then hold each row's own tokens only. Empty pk: none (each row's cache is whole).
  std::vector<at::Tensor> pk, pv;  // per layer: [G, Hkv, P, D]
  at::Tensor prefix_valid;         // [G, P] bool: a real prompt token
  at::Tensor prefix_pos;           // [G, P] int64: its position id
  at::Tensor group;                // [B] int64: the prompt a row reads
  at::Tensor slot;                 // [B] int64: the row's place in a [G, per_group] layout (group-major)
  int64_t per_group = 0;
  bool shared_prefix() const { return !pk.empty(); }
};

// Padding-free input (issue 15): the N real tokens of several sequences in one row, so the linear layers see
// no padding. Attention runs in blocks: each block is a set of query tokens and the key tokens they may see,
// padded only to the longest block of its kind. pack_rows (model/packing.hpp) makes one block per prompt
// (queries and keys: the prompt, causal) and one per response (queries: the response; keys: its prompt then
// itself, causal inside the response, full on the prompt): a prompt shared by several responses is computed
// once, and no response sees another.
struct AttentionBlocks {
  at::Tensor query;    // [count·nq] int64: the token in each query slot (pad slots: any token)
  at::Tensor key;      // [count·nk] int64: the token in each key slot (pad slots: any token)
  at::Tensor allowed;  // [count, nq, nk] bool: query slot may attend key slot (no sliding window yet)
  int64_t count = 0, nq = 0, nk = 0;
};

// The same attention unpadded, in flash attention's varlen form: attention sequence i has the queries
// q_index[cu_q[i], cu_q[i+1]) and the keys k_index[cu_k[i], cu_k[i+1]), causal aligned bottom-right (query j
// of nq sees keys 0 … j + nk − nq: a response sees its whole prompt and itself causally; a prompt, itself
// causally). Every token is the query of exactly one sequence.
struct VarlenInput {
  at::Tensor q_index, k_index;  // [N], [Nk] int64 token indices, sequences laid end to end
  at::Tensor cu_q, cu_k;        // [S + 1] int32 cumulative lengths
  int64_t max_q = 0, max_k = 0;
  at::Tensor order;             // [N] int64: token t's row in q_index
};

struct PackedInput {
  at::Tensor ids;                       // [N] int64
  at::Tensor pos;                       // [N] int64: position ids, restarting per sequence
  std::vector<AttentionBlocks> blocks;  // every token is the query of exactly one slot
  at::Tensor scatter;                   // [N] int64: each token's query slot, the blocks' slots laid end to end
  VarlenInput varlen;                   // the blocks' sequences unpadded (undefined tensors: not made)
};

// How packed attention runs. automatic: flash attention's varlen kernel where it applies (CUDA, half or
// bfloat16, head_dim a multiple of 8 up to 256), else the padded blocks through SDPA. blocks: always SDPA.
// varlen: the varlen form on any device (off CUDA an exact per-sequence reference, for tests).
enum class PackedAttention { automatic, blocks, varlen };

struct ForwardState {
  bool training = false;        // enables LoRA dropout
  bool lora_enabled = true;     // false: the base model (the reference policy for LoRA training)
  bool grad_checkpointing = false;
  PackedAttention packed_attention = PackedAttention::automatic;
};

class Decoder {
 public:
  ModelConfig config;
  at::Tensor embed;       // [V, H]
  std::vector<Layer> layers;
  at::Tensor final_norm;  // [H]
  at::Tensor lm_head;     // [V, H]; the same tensor as embed when tied; undefined for reward models
  at::Tensor score;       // [num_labels, H] for sequence classification
  double lora_dropout = 0.0;
  ForwardState state;

  // Final-norm hidden states. ids/mask: [B, T] (mask 1 = real token, any padding side);
  // position ids default to the count of real tokens before each position (padding skipped).
  at::Tensor hidden_states(const at::Tensor& ids, const at::Tensor& mask,
                           std::optional<at::Tensor> position_ids = std::nullopt) const;
  // logits: [B, T, V] in the weight dtype.
  at::Tensor logits(const at::Tensor& ids, const at::Tensor& mask,
                    std::optional<at::Tensor> position_ids = std::nullopt) const;
  // Reward-model scores on the last token of each row that is real and not pad_token_id (as transformers):
  // [B, num_labels].
  at::Tensor scores(const at::Tensor& ids, const at::Tensor& mask,
                    std::optional<at::Tensor> position_ids = std::nullopt) const;

  // Final-norm hidden states of a packed input: [N, H], row i for token i.
  at::Tensor hidden_states_packed(const PackedInput& p) const;

  // KV cache: allocate, then feed tokens (prefill [B, T] with left padding, then steps [B, 1]).
  KVCache make_cache(int64_t batch, int64_t capacity) const;
  at::Tensor hidden_states_cached(const at::Tensor& ids, const at::Tensor& mask, KVCache& cache) const;

  // Every weight under its Hugging Face name (LoRA tensors under PEFT's names, see lora.hpp).
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  std::vector<at::Tensor> trainable_parameters() const;  // those with requires_grad
  void set_requires_grad(bool base, bool lora);
  int64_t num_parameters(bool include_lora = false) const;
  at::ScalarType dtype() const { return embed.scalar_type(); }
  at::Device device() const { return embed.device(); }
  void to(at::Device device, at::ScalarType dtype);
  bool has_lora() const;

  // Applies one linear layer with this model's LoRA state.
  at::Tensor linear(const Proj& p, const at::Tensor& x) const;

 private:
  at::Tensor run(const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& pos, KVCache* cache,
                 const PackedInput* packed = nullptr) const;
};

// Position ids that skip padding: for each row, the number of real tokens strictly before t.
at::Tensor position_ids_from_mask(const at::Tensor& mask);  // [B, T] int64

// Every Proj of a layer with its module name inside the layer ("self_attn.q_proj", "mlp.down_proj").
std::vector<std::pair<std::string, Proj*>> layer_projs(Layer& l);
std::vector<std::pair<std::string, const Proj*>> layer_projs(const Layer& l);

}  // namespace hps::model

namespace hps::model {

// Calls f(name, tensor&) for every weight of d under its Hugging Face name, in checkpoint order. LoRA
// weights appear as "<module>.lora_A.weight" / "<module>.lora_B.weight" when present. A tied lm_head is
// not visited (it is `embed`).
template <class D, class F>
void visit_weights(D& d, F&& f) {
  f(std::string("model.embed_tokens.weight"), d.embed);
  for (size_t i = 0; i < d.layers.size(); ++i) {
    auto& l = d.layers[i];
    const std::string pre = "model.layers." + std::to_string(i) + ".";
    f(pre + "input_layernorm.weight", l.input_norm);
    f(pre + "post_attention_layernorm.weight", l.post_norm);
    for (auto& [name, p] : layer_projs(l)) {
      f(pre + name + ".weight", p->weight);
      if (p->bias.defined()) f(pre + name + ".bias", p->bias);
      if (p->lora_a.defined()) {
        f(pre + name + ".lora_A.weight", p->lora_a);
        f(pre + name + ".lora_B.weight", p->lora_b);
      }
    }
  }
  f(std::string("model.norm.weight"), d.final_norm);
  if (d.lm_head.defined() && !d.config.tie_word_embeddings) f(std::string("lm_head.weight"), d.lm_head);
  if (d.score.defined()) f(std::string("score.weight"), d.score);
}

// Mixed precision: while alive, ops on `device` run under autocast to `dtype` (bf16/fp16 matmuls, fp32
// weights and reductions), as torch.autocast does; restores the previous state.
class AutocastGuard {
 public:
  AutocastGuard(at::Device device, std::optional<at::ScalarType> dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  at::DeviceType type_;
  bool active_ = false, was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

// Saves a decoder's ForwardState and restores it when it goes out of scope, also when an exception leaves
// the scope: switch LoRA or dropout off for one forward (the reference policy of LoRA training) without
// leaving the model in that state. The decoder must outlive the guard.
class StateGuard {
 public:
  explicit StateGuard(Decoder& d) : d_(d), saved_(d.state) {}
  ~StateGuard() { d_.state = saved_; }
  StateGuard(const StateGuard&) = delete;
  StateGuard& operator=(const StateGuard&) = delete;

 private:
  Decoder& d_;
  ForwardState saved_;
};

// A decoder whose weights are meta tensors of the right shapes (no memory): the template that loading
// and random initialization fill in.
Decoder make_skeleton(const ModelConfig& c);

}  // namespace hps::model

#include "model/decoder.hpp"

#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <map>

#include "core/error.hpp"
#include "model/prefix_cache.hpp"

namespace hps::model {

AutocastGuard::AutocastGuard(at::Device device, std::optional<at::ScalarType> dtype) : type_(device.type()) {
  if (!dtype) return;
  active_ = true;
  was_enabled_ = at::autocast::is_autocast_enabled(type_);
  was_dtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_dtype(type_, *dtype);
  at::autocast::set_autocast_enabled(type_, true);
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  at::autocast::set_autocast_enabled(type_, was_enabled_);
  at::autocast::set_autocast_dtype(type_, was_dtype_);
  if (!was_enabled_) at::autocast::clear_cache();
}

std::vector<std::pair<std::string, Proj*>> layer_projs(Layer& l) {
  return {{"self_attn.q_proj", &l.q},  {"self_attn.k_proj", &l.k}, {"self_attn.v_proj", &l.v},
          {"self_attn.o_proj", &l.o},  {"mlp.gate_proj", &l.gate}, {"mlp.up_proj", &l.up},
          {"mlp.down_proj", &l.down}};
}
std::vector<std::pair<std::string, const Proj*>> layer_projs(const Layer& l) {
  auto m = layer_projs(const_cast<Layer&>(l));
  return {m.begin(), m.end()};
}

Decoder make_skeleton(const ModelConfig& c) {
  auto meta = [](std::vector<int64_t> shape) { return at::empty(shape, at::TensorOptions().device(at::kMeta)); };
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  Decoder d;
  d.config = c;
  d.embed = meta({c.vocab_size, H});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    Layer l;
    l.input_norm = meta({H});
    l.post_norm = meta({H});
    const bool qkv_bias = c.qkv_bias || c.attention_bias;
    l.q.weight = meta({c.q_dim(), H});
    l.k.weight = meta({c.kv_dim(), H});
    l.v.weight = meta({c.kv_dim(), H});
    l.o.weight = meta({H, c.q_dim()});
    if (qkv_bias) l.q.bias = meta({c.q_dim()}), l.k.bias = meta({c.kv_dim()}), l.v.bias = meta({c.kv_dim()});
    if (c.attention_bias) l.o.bias = meta({H});
    l.gate.weight = meta({I, H});
    l.up.weight = meta({I, H});
    l.down.weight = meta({H, I});
    if (c.mlp_bias) l.gate.bias = meta({I}), l.up.bias = meta({I}), l.down.bias = meta({H});
    d.layers.push_back(std::move(l));
  }
  d.final_norm = meta({H});
  if (c.head == Head::causal_lm) d.lm_head = c.tie_word_embeddings ? d.embed : meta({c.vocab_size, H});
  else d.score = meta({c.num_labels, H});
  return d;
}

at::Tensor position_ids_from_mask(const at::Tensor& mask) {
  return (mask.to(at::kLong).cumsum(1) - 1).clamp_min(0);
}

namespace {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor x32 = x.to(at::kFloat);
  x32 = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return w * x32.to(x.scalar_type());
}

// Rotary inverse frequencies [D/2] in fp32, computed as transformers does (incl. llama3 scaling).
at::Tensor inv_freq(const ModelConfig& c, at::Device device) {
  const int64_t D = c.head_dim;
  auto idx = at::arange(0, D, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat);
  at::Tensor f = 1.0 / at::pow(c.rope.theta, idx / static_cast<double>(D));
  if (c.rope.type == RopeType::llama3) {
    const auto& r = c.rope;
    const double old_len = static_cast<double>(r.original_max_position_embeddings);
    const double low_wavelen = old_len / r.low_freq_factor, high_wavelen = old_len / r.high_freq_factor;
    at::Tensor wavelen = 2 * M_PI / f;
    at::Tensor scaled = at::where(wavelen > low_wavelen, f / r.factor, f);
    at::Tensor smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / r.factor + smooth * scaled;
    at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    f = at::where(medium, smoothed, scaled);
  }
  return f.to(device);
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// What every layer's attention needs for one forward: rotary tables and masks.
struct AttnInputs {
  at::Tensor cos, sin;               // [B, 1, T, D] in the activation dtype
  std::map<int64_t, at::Tensor> mask;  // window → [B, 1, T, S] bool (true = attend); empty: causal only
  bool causal_only = false;
  int64_t past = 0;                  // tokens already in the cache
  // Packed input: cos/sin are [N, 1, D] in token order, attention runs in blocks (see PackedInput).
  struct Blocks {
    at::Tensor query, key;               // [count·nq], [count·nk]
    std::map<int64_t, at::Tensor> mask;  // window → [count, 1, nq, nk] bool
    int64_t count = 0, nq = 0, nk = 0;
  };
  std::vector<Blocks> blocks;
  at::Tensor scatter;                  // [N]; undefined: padded input
  // Or the varlen form (ForwardState::packed_attention): through flash attention on CUDA, else the reference.
  VarlenInput varlen;
  bool use_varlen = false, flash = false;
};

// Held by an autograd capsule so that a checkpointed layer recomputes with the inputs of its forward.
struct AttnHolder : torch::CustomClassHolder {
  AttnInputs a;
};

// allowed[b, t, s] = key s is real, s ≤ past + t, and within the window; plus the diagonal, so that a
// padding query (which sees no real key) gets a finite output instead of NaN. Its output is never used.
at::Tensor build_mask(const at::Tensor& key_valid, int64_t past, int64_t T, int64_t window) {
  const auto opts = at::TensorOptions().dtype(at::kLong).device(key_valid.device());
  const int64_t S = key_valid.size(1);
  at::Tensor q_idx = at::arange(past, past + T, opts).unsqueeze(1);  // [T, 1]
  at::Tensor k_idx = at::arange(0, S, opts).unsqueeze(0);            // [1, S]
  at::Tensor allowed = k_idx <= q_idx;
  if (window > 0) allowed = allowed.logical_and(q_idx - k_idx < window);
  allowed = allowed.unsqueeze(0).logical_and(key_valid.unsqueeze(1));  // [B, T, S]
  allowed = allowed.logical_or((k_idx == q_idx).unsqueeze(0));
  return allowed.unsqueeze(1);
}

// The rotary tables of positions `pos` ([B, T] → cos/sin [B, 1, T, D]; packed [N] → [N, 1, D]): a head axis
// of size 1 after the first, so they broadcast over the heads of q and k.
void set_rope(AttnInputs& a, const ModelConfig& c, const at::Tensor& pos, at::ScalarType dtype) {
  at::Tensor freqs = pos.to(at::kFloat).unsqueeze(-1) * inv_freq(c, pos.device());  // [..., D/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);                          // head axis after the first
  a.cos = emb.cos().to(dtype);
  a.sin = emb.sin().to(dtype);
}

AttnInputs attention_inputs(const ModelConfig& c, const at::Tensor& pos, const at::Tensor& key_valid, int64_t past,
                            bool all_real, at::ScalarType dtype) {
  AttnInputs a;
  a.past = past;
  const int64_t T = pos.size(1);
  set_rope(a, c, pos, dtype);  // cos, sin: [B, 1, T, D]
  bool windows_matter = false;
  for (int64_t w : c.window) windows_matter |= (w > 0 && w < past + T);
  a.causal_only = all_real && past == 0 && !windows_matter;
  if (!a.causal_only)
    for (int64_t w : c.window)
      if (!a.mask.count(w)) a.mask[w] = build_mask(key_valid, past, T, w >= past + T ? 0 : w);
  return a;
}

// The packed input's attention inputs. A pad query slot may attend only key slot 0 (a real token), so its
// softmax stays finite; its output is never scattered back.
AttnInputs packed_attention_inputs(const ModelConfig& c, const PackedInput& p, at::ScalarType dtype,
                                   PackedAttention mode) {
  AttnInputs a;
  a.scatter = p.scatter;
  set_rope(a, c, p.pos, dtype);  // cos, sin: [N, 1, D]
  // Flash attention's kernel: CUDA, 16-bit activations, head_dim a multiple of 8 up to 256.
  a.flash = p.ids.is_cuda() && (dtype == at::kBFloat16 || dtype == at::kHalf) && c.head_dim % 8 == 0 &&
            c.head_dim <= 256;
  a.use_varlen = p.varlen.q_index.defined() && (mode == PackedAttention::varlen ||
                                                (mode == PackedAttention::automatic && a.flash));
  if (a.use_varlen) {
    a.varlen = p.varlen;
    return a;
  }
  for (const auto& b : p.blocks) {
    AttnInputs::Blocks x{b.query, b.key, {}, b.count, b.nq, b.nk};
    at::Tensor pq = p.pos.index_select(0, b.query).view({b.count, b.nq, 1});  // pq: [count, nq, 1]
    at::Tensor pk = p.pos.index_select(0, b.key).view({b.count, 1, b.nk});    // pk: [count, 1, nk]
    at::Tensor first = at::zeros({1, 1, b.nk}, b.allowed.options());
    first.select(2, 0).fill_(true);
    for (int64_t w : c.window) {
      if (x.mask.count(w)) continue;
      at::Tensor allowed = b.allowed;  // [count, nq, nk]
      if (w > 0) allowed = allowed.logical_and(pq - pk < w);  // a sliding window over positions
      const at::Tensor empty = allowed.any(2, /*keepdim=*/true).logical_not();  // [count, nq, 1]: pad queries
      x.mask[w] = allowed.logical_or(empty.logical_and(first)).unsqueeze(1);   // [count, 1, nq, nk]
    }
    a.blocks.push_back(std::move(x));
  }
  return a;
}

// Packed attention: q [N, Hq, D], k/v [N, Hkv, D] (roped, in token order) → [N, Hq·D].
at::Tensor packed_attention(const ModelConfig& c, size_t li, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const AttnInputs& a) {
  const int64_t D = c.head_dim, groups = c.num_heads / c.num_kv_heads;
  std::vector<at::Tensor> outs;
  for (const auto& b : a.blocks) {
    auto slots = [&](const at::Tensor& t, const at::Tensor& idx, int64_t n) {  // [N, h, D] → [count, h, n, D]
      return t.index_select(0, idx).view({b.count, n, t.size(1), D}).transpose(1, 2);
    };
    at::Tensor qb = slots(q, b.query, b.nq), kb = slots(k, b.key, b.nk), vb = slots(v, b.key, b.nk);
    if (groups > 1) kb = kb.repeat_interleave(groups, 1), vb = vb.repeat_interleave(groups, 1);
    at::Tensor o = at::scaled_dot_product_attention(qb, kb, vb, b.mask.at(c.window[li]));  // [count, Hq, nq, D]
    outs.push_back(o.transpose(1, 2).reshape({b.count * b.nq, c.q_dim()}));
  }
  return at::cat(outs, 0).index_select(0, a.scatter);  // [N, Hq·D]
}

// The exact varlen attention off CUDA (tests): sequence by sequence, SDPA with the bottom-right causal mask
// and the layer's window. qv [N, Hq, D], kv/vv [Nk, Hkv, D] in the layout's order → [N, Hq, D].
at::Tensor varlen_reference(const at::Tensor& qv, const at::Tensor& kv, const at::Tensor& vv, const VarlenInput& vl,
                            int64_t groups, int64_t window) {
  const at::Tensor cq = vl.cu_q.to(at::kCPU, at::kLong), ck = vl.cu_k.to(at::kCPU, at::kLong);
  const auto q_at = cq.accessor<int64_t, 1>(), k_at = ck.accessor<int64_t, 1>();
  std::vector<at::Tensor> outs;
  for (int64_t i = 0; i + 1 < cq.size(0); ++i) {
    const int64_t nq = q_at[i + 1] - q_at[i], nk = k_at[i + 1] - k_at[i];
    at::Tensor qi = qv.narrow(0, q_at[i], nq).transpose(0, 1);  // qi: [Hq, nq, D]
    at::Tensor ki = kv.narrow(0, k_at[i], nk).transpose(0, 1);  // ki: [Hkv, nk, D]
    at::Tensor vi = vv.narrow(0, k_at[i], nk).transpose(0, 1);
    if (groups > 1) ki = ki.repeat_interleave(groups, 0), vi = vi.repeat_interleave(groups, 0);
    const auto opts = at::TensorOptions().dtype(at::kLong).device(qv.device());
    const at::Tensor qpos = at::arange(nq, opts).unsqueeze(1) + (nk - nq), kpos = at::arange(nk, opts).unsqueeze(0);
    at::Tensor allowed = kpos <= qpos;  // [nq, nk]
    if (window > 0) allowed = allowed.logical_and(qpos - kpos < window);
    outs.push_back(at::scaled_dot_product_attention(qi, ki, vi, allowed).transpose(0, 1));  // [nq, Hq, D]
  }
  return at::cat(outs, 0);
}

// Varlen attention: q [N, Hq, D], k/v [N, Hkv, D] (roped, in token order) → [N, Hq·D]. Flash attention's
// causal mask is aligned bottom-right, which is the packed layout's rule; its window counts keys, which in a
// sequence are consecutive positions, as the block masks count them.
at::Tensor varlen_attention(const ModelConfig& c, size_t li, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const AttnInputs& a) {
  const VarlenInput& vl = a.varlen;
  const int64_t w = c.window[li];
  at::Tensor qv = q.index_select(0, vl.q_index);  // qv: [N, Hq, D], sequences end to end
  at::Tensor kv = k.index_select(0, vl.k_index);  // kv: [Nk, Hkv, D]
  at::Tensor vv = v.index_select(0, vl.k_index);
  at::Tensor o;                                   // o: [N, Hq, D]
  if (a.flash) {
    std::optional<int64_t> left, right;
    if (w > 0 && w < vl.max_k) left = w - 1, right = 0;
    o = std::get<0>(at::_flash_attention_forward(qv, kv, vv, vl.cu_q, vl.cu_k, vl.max_q, vl.max_k, 0.0,
                                                 /*is_causal=*/true, /*return_debug_mask=*/false, std::nullopt, left, right));
  } else {
    o = varlen_reference(qv, kv, vv, vl, c.num_heads / c.num_kv_heads, w);
  }
  return o.reshape({q.size(0), c.q_dim()}).index_select(0, vl.order);  // token order
}

// y + mlp(norm(y)): the second half of a layer, y = x + attention.
at::Tensor mlp_block(const Decoder& m, const Layer& l, const at::Tensor& y) {
  at::Tensor h2 = rms_norm(y, l.post_norm, m.config.rms_norm_eps);
  return y + m.linear(l.down, at::silu(m.linear(l.gate, h2)) * m.linear(l.up, h2));
}

at::Tensor layer_forward(const Decoder& m, const Layer& l, size_t li, const at::Tensor& x, const AttnInputs& a,
                         KVCache* cache) {
  const auto& c = m.config;
  const int64_t B = x.size(0), T = x.size(1), D = c.head_dim;
  at::Tensor h = rms_norm(x, l.input_norm, c.rms_norm_eps);  // h: [B, T, H]
  if (a.scatter.defined()) {  // packed: B = 1, T = N tokens
    at::Tensor q = m.linear(l.q, h).view({T, c.num_heads, D});     // q: [N, Hq, D]
    at::Tensor k = m.linear(l.k, h).view({T, c.num_kv_heads, D});  // k: [N, Hkv, D]
    at::Tensor v = m.linear(l.v, h).view({T, c.num_kv_heads, D});  // v: [N, Hkv, D]
    q = q * a.cos + rotate_half(q) * a.sin;
    k = k * a.cos + rotate_half(k) * a.sin;
    const at::Tensor o = a.use_varlen ? varlen_attention(c, li, q, k, v, a) : packed_attention(c, li, q, k, v, a);
    return mlp_block(m, l, x + m.linear(l.o, o.view({B, T, c.q_dim()})));
  }
  at::Tensor q = m.linear(l.q, h).view({B, T, c.num_heads, D}).transpose(1, 2);    // q: [B, Hq, T, D]
  at::Tensor k = m.linear(l.k, h).view({B, T, c.num_kv_heads, D}).transpose(1, 2); // k: [B, Hkv, T, D]
  at::Tensor v = m.linear(l.v, h).view({B, T, c.num_kv_heads, D}).transpose(1, 2); // v: [B, Hkv, T, D]
  q = q * a.cos + rotate_half(q) * a.sin;
  k = k * a.cos + rotate_half(k) * a.sin;
  if (cache) {
    cache->k[li].narrow(2, a.past, T).copy_(k);
    cache->v[li].narrow(2, a.past, T).copy_(v);
    k = cache->k[li].narrow(2, 0, a.past + T);  // k: [B, Hkv, S, D]
    v = cache->v[li].narrow(2, 0, a.past + T);
    if (cache->shared_prefix()) {  // the prompt's K/V once per prompt (model/prefix_cache.hpp)
      if (T != 1) throw InternalError("a shared prompt cache decodes one token per row, got " + std::to_string(T));
      const at::Tensor own_mask = a.causal_only ? at::Tensor() : a.mask.at(c.window[li]);
      at::Tensor attn = prefix_attention(*cache, li, q, k, v, own_mask, cache->seen, c.window[li]);  // [B, Hq, 1, D]
      return mlp_block(m, l, x + m.linear(l.o, attn.transpose(1, 2).reshape({B, T, c.q_dim()})));
    }
  }
  const int64_t groups = c.num_heads / c.num_kv_heads;
  if (groups > 1) {  // grouped-query attention: each kv head serves `groups` query heads
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
  std::optional<at::Tensor> mask;
  if (!a.causal_only) mask = a.mask.at(c.window[li]);
  at::Tensor attn = at::scaled_dot_product_attention(q, k, v, mask, 0.0, a.causal_only);  // [B, Hq, T, D]
  attn = attn.transpose(1, 2).reshape({B, T, c.q_dim()});
  return mlp_block(m, l, x + m.linear(l.o, attn));
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Gradient checkpointing of one layer: forward without saving activations; backward recomputes the layer
// (restoring the RNG so LoRA dropout draws the same mask) and differentiates it. The trainable weights
// come in as a TensorList so that autograd sees each one as an input (a std::vector would be opaque).
struct CheckpointedLayer : torch::autograd::Function<CheckpointedLayer> {
  static at::Tensor forward(AutogradContext* ctx, at::Tensor x, at::TensorList params, int64_t model_ptr,
                            int64_t layer, int64_t holder_ptr) {
    const auto* m = reinterpret_cast<const Decoder*>(model_ptr);
    auto* holder = reinterpret_cast<AttnHolder*>(holder_ptr);
    const AttnInputs* a = &holder->a;
    at::Generator gen = x.is_cuda() ? at::globalContext().defaultGenerator(x.device())
                                    : at::detail::getDefaultCPUGenerator();
    ctx->saved_data["rng"] = gen.get_state();
    // Recompute under the same autocast state as this forward (backward runs outside the autocast region).
    const auto dev = x.device().type();
    ctx->saved_data["autocast"] = at::autocast::is_autocast_enabled(dev);
    ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(at::autocast::get_autocast_dtype(dev));
    ctx->saved_data["model"] = model_ptr;
    ctx->saved_data["layer"] = layer;
    // The attention inputs (rotary tables, masks, packed blocks) stay alive with this node until backward.
    ctx->saved_data["inputs"] = c10::IValue::make_capsule(c10::intrusive_ptr<AttnHolder>::reclaim_copy(holder));
    ctx->save_for_backward(params.vec());
    ctx->saved_data["x"] = x;
    return layer_forward(*m, m->layers[static_cast<size_t>(layer)], static_cast<size_t>(layer), x, *a, nullptr);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto* m = reinterpret_cast<const Decoder*>(ctx->saved_data["model"].toInt());
    const auto layer = static_cast<size_t>(ctx->saved_data["layer"].toInt());
    const AttnInputs& a = static_cast<AttnHolder*>(ctx->saved_data["inputs"].toCapsule().get())->a;
    variable_list params = ctx->get_saved_variables();
    at::Tensor x = ctx->saved_data["x"].toTensor().detach().requires_grad_(true);
    at::Generator gen = x.is_cuda() ? at::globalContext().defaultGenerator(x.device())
                                    : at::detail::getDefaultCPUGenerator();
    at::Tensor now = gen.get_state();
    gen.set_state(ctx->saved_data["rng"].toTensor());
    at::Tensor y;
    {
      at::AutoGradMode enable(true);
      std::optional<at::ScalarType> cast;
      if (ctx->saved_data["autocast"].toBool())
        cast = static_cast<at::ScalarType>(ctx->saved_data["autocast_dtype"].toInt());
      AutocastGuard guard(x.device(), cast);
      y = layer_forward(*m, m->layers[layer], layer, x, a, nullptr);
    }
    gen.set_state(now);
    variable_list inputs{x};
    inputs.insert(inputs.end(), params.begin(), params.end());
    variable_list grads = torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                                /*create_graph=*/false, /*allow_unused=*/true);
    variable_list out{grads[0]};
    out.insert(out.end(), grads.begin() + 1, grads.end());
    out.push_back({});  // model_ptr
    out.push_back({});  // layer
    out.push_back({});  // holder_ptr
    return out;
  }
};

}  // namespace

at::Tensor Decoder::linear(const Proj& p, const at::Tensor& x) const {
  at::Tensor y = at::linear(x, p.weight, p.bias);
  if (p.lora_a.defined() && state.lora_enabled) {
    const at::Tensor xd = (state.training && lora_dropout > 0) ? at::dropout(x, lora_dropout, true) : x;
    y = y + at::linear(at::linear(xd, p.lora_a), p.lora_b) * p.lora_scale;
  }
  return y;
}

at::Tensor Decoder::run(const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& pos, KVCache* cache,
                        const PackedInput* packed) const {
  if (ids.dim() != 2 || mask.sizes() != ids.sizes() || pos.sizes() != ids.sizes())
    throw InputError("decoder input: ids, mask and position ids must all be [B, T]; got ids " +
                     c10::str(ids.sizes()) + ", mask " + c10::str(mask.sizes()) + ", positions " +
                     c10::str(pos.sizes()));
  if (ids.numel() == 0) throw InputError("decoder input: empty batch " + c10::str(ids.sizes()));
  // One host sync: token ids in range (an out-of-range id would be a device assert on CUDA), positions
  // within the trained context, and padding.
  at::Tensor stats = at::stack({ids.min(), ids.max(), mask.to(at::kLong).min(), pos.max().to(at::kLong)}).cpu();
  const auto* s = stats.data_ptr<int64_t>();
  if (s[0] < 0 || s[1] >= config.vocab_size)
    throw InputError("decoder input: token ids must be in [0, " + std::to_string(config.vocab_size) + "), found " +
                     std::to_string(s[0] < 0 ? s[0] : s[1]));
  if (s[3] >= config.max_position_embeddings)
    throw InputError("decoder input: a sequence reaches position " + std::to_string(s[3]) +
                     ", beyond the model's context (max_position_embeddings = " +
                     std::to_string(config.max_position_embeddings) + " in config.json); shorten the input");
  const bool all_real = s[2] > 0;
  const int64_t T = ids.size(1);
  const int64_t past = cache ? cache->length : 0;
  at::Tensor key_valid = mask.to(at::kBool);
  if (cache) {
    if (past + T > cache->capacity)
      throw InputError("KV cache full: " + std::to_string(past) + " + " + std::to_string(T) + " tokens > capacity " +
                       std::to_string(cache->capacity));
    cache->key_valid.narrow(1, past, T).copy_(key_valid);
    key_valid = cache->key_valid.narrow(1, 0, past + T);
  }
  auto holder = c10::make_intrusive<AttnHolder>();
  holder->a = packed ? packed_attention_inputs(config, *packed, dtype(), state.packed_attention)
                     : attention_inputs(config, pos, key_valid, past, all_real, dtype());
  const AttnInputs& a = holder->a;
  at::Tensor x = at::embedding(embed, ids);  // x: [B, T, H]
  const bool ckpt = state.grad_checkpointing && !cache && at::GradMode::is_enabled();
  for (size_t i = 0; i < layers.size(); ++i) {
    if (ckpt) {
      variable_list params;
      for (auto& [name, p] : layer_projs(layers[i]))
        for (const at::Tensor* t : {&p->weight, &p->bias, &p->lora_a, &p->lora_b})
          if (t->defined() && t->requires_grad()) params.push_back(*t);
      for (const at::Tensor* t : {&layers[i].input_norm, &layers[i].post_norm})
        if (t->requires_grad()) params.push_back(*t);
      x = CheckpointedLayer::apply(x, at::TensorList(params), reinterpret_cast<int64_t>(this), static_cast<int64_t>(i),
                                   reinterpret_cast<int64_t>(holder.get()));
    } else {
      x = layer_forward(*this, layers[i], i, x, a, cache);
    }
  }
  if (cache) cache->length += T;
  return rms_norm(x, final_norm, config.rms_norm_eps);  // [B, T, H]
}

at::Tensor Decoder::hidden_states(const at::Tensor& ids, const at::Tensor& mask,
                                  std::optional<at::Tensor> position_ids) const {
  return run(ids, mask, position_ids ? *position_ids : position_ids_from_mask(mask), nullptr);
}

at::Tensor Decoder::hidden_states_packed(const PackedInput& p) const {
  const int64_t N = p.ids.numel();
  bool ok = p.ids.dim() == 1 && p.pos.sizes() == p.ids.sizes() && p.scatter.sizes() == p.ids.sizes() && !p.blocks.empty();
  for (const auto& b : p.blocks)
    ok = ok && b.query.numel() == b.count * b.nq && b.key.numel() == b.count * b.nk &&
         b.allowed.sizes() == at::IntArrayRef{b.count, b.nq, b.nk};
  if (!ok)
    throw InputError("packed decoder input: ids, pos, scatter [N] and blocks of query [count·nq], key [count·nk], "
                     "allowed [count, nq, nk] expected; got ids " + c10::str(p.ids.sizes()) + " with " +
                     std::to_string(p.blocks.size()) + " block sets");
  const at::Tensor ids = p.ids.view({1, N});
  return run(ids, at::ones_like(ids), p.pos.view({1, N}), nullptr, &p).squeeze(0);  // [N, H]
}

at::Tensor Decoder::logits(const at::Tensor& ids, const at::Tensor& mask, std::optional<at::Tensor> position_ids) const {
  if (!lm_head.defined()) throw InputError(config.architecture + " has no language-model head (it is a reward model)");
  return at::linear(hidden_states(ids, mask, position_ids), lm_head);  // [B, T, V]
}

at::Tensor Decoder::scores(const at::Tensor& ids, const at::Tensor& mask, std::optional<at::Tensor> position_ids) const {
  if (!score.defined()) throw InputError(config.architecture + " has no score head (it is not a reward model)");
  at::Tensor h = hidden_states(ids, mask, position_ids);  // [B, T, H]
  const int64_t T = ids.size(1);
  // transformers scores the rightmost token whose id is not pad_token_id; with no pad id configured, the
  // rightmost real token of the mask. (They differ when the pad id is also a real token, e.g. a pad token
  // equal to the end-of-turn token that ends every response: transformers then scores the token before it.)
  at::Tensor keep = mask.to(at::kBool);
  if (config.pad_token_id) keep = keep.logical_and(ids != *config.pad_token_id);
  at::Tensor last = (at::arange(T, mask.options().dtype(at::kLong)).unsqueeze(0) * keep.to(at::kLong)).argmax(1);
  at::Tensor h_last = h.gather(1, last.view({-1, 1, 1}).expand({-1, 1, h.size(2)})).squeeze(1);  // [B, H]
  return at::linear(h_last, score);  // [B, L]
}

KVCache Decoder::make_cache(int64_t batch, int64_t capacity) const {
  if (capacity > config.max_position_embeddings)  // before allocating a cache no forward could fill
    throw InputError("a KV cache of " + std::to_string(capacity) + " positions (prompt + new tokens) exceeds the " +
                     "model's context (max_position_embeddings = " + std::to_string(config.max_position_embeddings) +
                     " in config.json); shorten the prompt or lower --max-new-tokens");
  KVCache c;
  const auto opts = at::TensorOptions().dtype(dtype()).device(device());
  for (size_t i = 0; i < layers.size(); ++i) {
    c.k.push_back(at::zeros({batch, config.num_kv_heads, capacity, config.head_dim}, opts));
    c.v.push_back(at::zeros({batch, config.num_kv_heads, capacity, config.head_dim}, opts));
  }
  c.key_valid = at::zeros({batch, capacity}, opts.dtype(at::kBool));
  c.seen = at::zeros({batch}, opts.dtype(at::kLong));
  c.capacity = capacity;
  return c;
}

at::Tensor Decoder::hidden_states_cached(const at::Tensor& ids, const at::Tensor& mask, KVCache& cache) const {
  at::Tensor m = mask.to(at::kLong);
  at::Tensor pos = (cache.seen.unsqueeze(1) + m.cumsum(1) - 1).clamp_min(0);
  at::Tensor h = run(ids, mask, pos, &cache);
  cache.seen = cache.seen + m.sum(1);
  return h;
}

std::vector<std::pair<std::string, at::Tensor>> Decoder::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  visit_weights(*this, [&](const std::string& n, const at::Tensor& t) { out.emplace_back(n, t); });
  return out;
}

std::vector<at::Tensor> Decoder::trainable_parameters() const {
  std::vector<at::Tensor> out;
  visit_weights(*this, [&](const std::string&, const at::Tensor& t) {
    if (t.requires_grad()) out.push_back(t);
  });
  return out;
}

void Decoder::set_requires_grad(bool base, bool lora) {
  visit_weights(*this, [&](const std::string& n, at::Tensor& t) {
    t.set_requires_grad(n.find(".lora_") != std::string::npos ? lora : base);
  });
}

int64_t Decoder::num_parameters(bool include_lora) const {
  int64_t n = 0;
  visit_weights(*this, [&](const std::string& name, const at::Tensor& t) {
    if (include_lora || name.find(".lora_") == std::string::npos) n += t.numel();
  });
  return n;
}

bool Decoder::has_lora() const {
  for (const auto& l : layers)
    for (const auto& [n, p] : layer_projs(l))
      if (p->lora_a.defined()) return true;
  return false;
}

void Decoder::to(at::Device device, at::ScalarType type) {
  visit_weights(*this, [&](const std::string&, at::Tensor& t) {
    const bool rg = t.requires_grad();
    t = t.detach().to(device, type);
    if (rg) t.set_requires_grad(true);
  });
  if (config.tie_word_embeddings && lm_head.defined()) lm_head = embed;
}

}  // namespace hps::model

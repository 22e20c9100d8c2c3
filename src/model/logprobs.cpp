#include "model/logprobs.hpp"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "core/error.hpp"

namespace hps::model {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per chunk so that one fp32 [rows, V] block stays near 256 MiB.
int64_t default_chunk(int64_t V) { return std::max<int64_t>(16, (int64_t{1} << 26) / std::max<int64_t>(V, 1)); }

struct LinearLogSoftmaxGather : torch::autograd::Function<LinearLogSoftmaxGather> {
  static at::Tensor forward(AutogradContext* ctx, at::Tensor h, at::Tensor w, at::Tensor target, int64_t chunk) {
    const int64_t N = h.size(0);
    const at::ScalarType acc = at::promote_types(at::kFloat, w.scalar_type());  // fp32 (fp64 for fp64 weights)
    at::Tensor out = at::empty({N}, h.options().dtype(acc));  // out: [N]
    at::Tensor lse = at::empty({N}, h.options().dtype(acc));  // lse: [N], kept for backward
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      at::Tensor logits = at::matmul(h.narrow(0, s, n), w.t()).to(acc);  // [n, V]
      at::Tensor l = at::logsumexp(logits, 1);                                  // [n]
      lse.narrow(0, s, n).copy_(l);
      out.narrow(0, s, n).copy_(logits.gather(1, target.narrow(0, s, n).unsqueeze(1)).squeeze(1) - l);
    }
    ctx->save_for_backward({h, w, target, lse});
    ctx->saved_data["chunk"] = chunk;
    return out;
  }

  // d logp_i / d logits_i = onehot(target_i) − softmax(logits_i); chain through logits = h W^T.
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &h = saved[0], &w = saved[1], &target = saved[2], &lse = saved[3];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const at::ScalarType acc = lse.scalar_type();
    const at::Tensor g = grad_out[0].to(acc);  // [N]
    const int64_t N = h.size(0);
    const bool need_h = ctx->needs_input_grad(0), need_w = ctx->needs_input_grad(1);
    at::Tensor gh = need_h ? at::empty_like(h) : at::Tensor();
    at::Tensor gw = need_w ? at::zeros(w.sizes(), w.options().dtype(acc)) : at::Tensor();
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      at::Tensor hc = h.narrow(0, s, n);
      at::Tensor p = (at::matmul(hc, w.t()).to(acc) - lse.narrow(0, s, n).unsqueeze(1)).exp_();  // [n, V]
      at::Tensor gc = g.narrow(0, s, n).unsqueeze(1);
      at::Tensor glogits = p.mul_(-gc);  // −g · softmax
      glogits.scatter_add_(1, target.narrow(0, s, n).unsqueeze(1), gc);  // + g · onehot
      at::Tensor gl = glogits.to(w.scalar_type());  // [n, V]
      if (need_h) gh.narrow(0, s, n).copy_(at::matmul(gl, w));
      if (need_w) gw.add_(at::matmul(gl.t(), hc).to(acc));
    }
    return {gh, need_w ? gw.to(w.scalar_type()) : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor linear_log_softmax_gather(const at::Tensor& h, const at::Tensor& w, const at::Tensor& target,
                                     int64_t chunk_rows) {
  if (h.dim() != 2 || w.dim() != 2 || h.size(1) != w.size(1) || target.dim() != 1 || target.size(0) != h.size(0))
    throw InputError("linear_log_softmax_gather: expected h [N, H], w [V, H], target [N]; got " + c10::str(h.sizes()) +
                     ", " + c10::str(w.sizes()) + ", " + c10::str(target.sizes()));
  const int64_t chunk = chunk_rows > 0 ? chunk_rows : default_chunk(w.size(0));
  return LinearLogSoftmaxGather::apply(h, w, target.to(at::kLong), chunk);
}

namespace {

void check_response_mask(const at::Tensor& ids, const at::Tensor& response_mask) {
  if (response_mask.sizes() != ids.sizes())
    throw InputError("response_mask must have the shape of ids " + c10::str(ids.sizes()) + ", got " +
                     c10::str(response_mask.sizes()));
}

}  // namespace

SeqLogprobs sequence_logprobs(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask,
                              const at::Tensor& response_mask, int64_t chunk_rows) {
  check_response_mask(ids, response_mask);
  if (!d.lm_head.defined()) throw InputError(d.config.architecture + " has no language-model head");
  const int64_t B = ids.size(0), T = ids.size(1);
  if (T < 2) throw InputError("sequence_logprobs: sequences need at least 2 tokens, got T = " + std::to_string(T));
  at::Tensor h = d.hidden_states(ids, mask);                          // h: [B, T, H]
  // Token t is predicted at position t-1: pair h[:, :-1] with ids[:, 1:], keep response tokens only.
  at::Tensor scored = response_mask.narrow(1, 1, T - 1).to(at::kBool).logical_and(mask.narrow(1, 1, T - 1).to(at::kBool));
  at::Tensor flat = scored.reshape({-1}).nonzero().squeeze(1);         // flat: [N] indices into [B·(T-1)]
  at::Tensor h_sel = h.narrow(1, 0, T - 1).reshape({-1, h.size(2)}).index_select(0, flat);  // [N, H]
  at::Tensor tgt = ids.narrow(1, 1, T - 1).reshape({-1}).index_select(0, flat);            // [N]
  at::Tensor logp = linear_log_softmax_gather(h_sel, d.lm_head, tgt, chunk_rows);          // [N] fp32
  at::Tensor row = at::floor_divide(flat, T - 1);                                          // [N]
  SeqLogprobs out;
  out.sum = at::zeros({B}, logp.options()).index_add(0, row, logp);
  out.count = scored.sum(1);
  return out;
}

SeqLogprobs packed_sequence_logprobs(const Decoder& d, const PackedRows& p, int64_t chunk_rows) {
  if (!d.lm_head.defined()) throw InputError(d.config.architecture + " has no language-model head");
  at::Tensor h = d.hidden_states_packed(p.input);                                            // h: [N, H]
  at::Tensor logp = linear_log_softmax_gather(h.index_select(0, p.pred), d.lm_head, p.target, chunk_rows);  // [M]
  SeqLogprobs out;
  out.sum = at::zeros({p.rows}, logp.options()).index_add(0, p.row, logp);  // [R]
  out.count = p.count;
  return out;
}

SeqLogprobs sequence_logprobs(const Decoder& d, const at::Tensor& ids, const at::Tensor& mask,
                              const at::Tensor& response_mask, Layout layout, int64_t chunk_rows) {
  if (layout == Layout::padded) return sequence_logprobs(d, ids, mask, response_mask, chunk_rows);
  check_response_mask(ids, response_mask);
  return packed_sequence_logprobs(d, pack_rows(ids, mask, response_mask, d.device()), chunk_rows);
}

SeqLogprobs sequence_logprobs_from_logits(const at::Tensor& logits, const at::Tensor& ids,
                                          const at::Tensor& response_mask) {
  check_response_mask(ids, response_mask);
  const int64_t T = ids.size(1);
  at::Tensor lp = at::log_softmax(logits.narrow(1, 0, T - 1).to(at::kFloat), -1)
                      .gather(2, ids.narrow(1, 1, T - 1).unsqueeze(2))
                      .squeeze(2);  // [B, T-1]
  at::Tensor m = response_mask.narrow(1, 1, T - 1).to(at::kFloat);
  return {(lp * m).sum(1), m.sum(1).to(at::kLong)};
}

}  // namespace hps::model

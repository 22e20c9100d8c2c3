#include "model/packing.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace hps::model {

namespace {

// One attention block under construction: every query sees keys [0, prefix) and, causally, the rest
// (key prefix + j is query j's own token).
struct BlockSpec {
  std::vector<int64_t> query, key;
  int64_t prefix = 0;
};

std::vector<int64_t> span(int64_t from, int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = from + i;
  return v;
}

// Blocks of one kind padded to the longest; scatter[token] = its query slot, numbered from `first_slot`.
AttentionBlocks make_blocks(const std::vector<BlockSpec>& specs, std::vector<int64_t>& scatter, int64_t first_slot) {
  AttentionBlocks b;
  b.count = static_cast<int64_t>(specs.size());
  for (const auto& s : specs) {
    b.nq = std::max<int64_t>(b.nq, static_cast<int64_t>(s.query.size()));
    b.nk = std::max<int64_t>(b.nk, static_cast<int64_t>(s.key.size()));
  }
  std::vector<int64_t> query(static_cast<size_t>(b.count * b.nq)), key(static_cast<size_t>(b.count * b.nk));
  std::vector<int64_t> prefix, qlen, klen;  // [count] each
  for (int64_t i = 0; i < b.count; ++i) {
    const auto& s = specs[static_cast<size_t>(i)];
    for (int64_t j = 0; j < b.nq; ++j) {  // pad slots repeat the block's first key token (any real token)
      const bool real = j < static_cast<int64_t>(s.query.size());
      query[static_cast<size_t>(i * b.nq + j)] = real ? s.query[static_cast<size_t>(j)] : s.key[0];
      if (real) scatter[static_cast<size_t>(s.query[static_cast<size_t>(j)])] = first_slot + i * b.nq + j;
    }
    for (int64_t j = 0; j < b.nk; ++j)
      key[static_cast<size_t>(i * b.nk + j)] = j < static_cast<int64_t>(s.key.size()) ? s.key[static_cast<size_t>(j)] : s.key[0];
    prefix.push_back(s.prefix);
    qlen.push_back(static_cast<int64_t>(s.query.size()));
    klen.push_back(static_cast<int64_t>(s.key.size()));
  }
  auto col = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).view({b.count, 1, 1}); };
  const at::Tensor qi = at::arange(b.nq, at::kLong).view({1, b.nq, 1}), kj = at::arange(b.nk, at::kLong).view({1, 1, b.nk});
  const at::Tensor pre = col(prefix);
  b.allowed = (kj < pre).logical_or(kj - pre <= qi).logical_and(qi < col(qlen)).logical_and(kj < col(klen));  // [count, nq, nk]
  b.query = at::tensor(query, at::kLong);
  b.key = at::tensor(key, at::kLong);
  return b;
}

// The specs' sequences unpadded (VarlenInput); every spec is bottom-right causal (prefix = keys − queries).
VarlenInput make_varlen(const std::vector<const std::vector<BlockSpec>*>& kinds, size_t n_tokens, at::Device device) {
  std::vector<int64_t> q_index, k_index, order(n_tokens, -1);
  std::vector<int32_t> cu_q{0}, cu_k{0};
  VarlenInput v;
  for (const auto* specs : kinds)
    for (const auto& s : *specs) {
      const auto nq = static_cast<int64_t>(s.query.size()), nk = static_cast<int64_t>(s.key.size());
      if (s.prefix != nk - nq) throw InternalError("packing: a block that is not bottom-right causal");
      for (int64_t t : s.query) order[static_cast<size_t>(t)] = static_cast<int64_t>(q_index.size()), q_index.push_back(t);
      k_index.insert(k_index.end(), s.key.begin(), s.key.end());
      cu_q.push_back(static_cast<int32_t>(q_index.size()));
      cu_k.push_back(static_cast<int32_t>(k_index.size()));
      v.max_q = std::max(v.max_q, nq), v.max_k = std::max(v.max_k, nk);
    }
  auto on = [&](const auto& x, at::ScalarType t) { return at::tensor(x, t).to(device); };
  v.q_index = on(q_index, at::kLong), v.k_index = on(k_index, at::kLong), v.order = on(order, at::kLong);
  v.cu_q = on(cu_q, at::kInt), v.cu_k = on(cu_k, at::kInt);
  return v;
}

}  // namespace

PackedRows pack_rows(const at::Tensor& ids_in, const at::Tensor& mask_in, const at::Tensor& resp_in, at::Device device,
                     std::optional<int64_t> score_skip_id) {
  if (ids_in.dim() != 2 || mask_in.sizes() != ids_in.sizes() || resp_in.sizes() != ids_in.sizes())
    throw InputError("packing: ids, mask and response_mask must all be [R, T]; got " + c10::str(ids_in.sizes()) + ", " +
                     c10::str(mask_in.sizes()) + ", " + c10::str(resp_in.sizes()));
  const at::Tensor ids_c = ids_in.to(at::kCPU, at::kLong).contiguous(), mask_c = mask_in.to(at::kCPU, at::kLong).contiguous(),
                   resp_c = resp_in.to(at::kCPU, at::kLong).contiguous();
  const auto ids = ids_c.accessor<int64_t, 2>(), mask = mask_c.accessor<int64_t, 2>(), resp = resp_c.accessor<int64_t, 2>();
  const int64_t R = ids_c.size(0), T = ids_c.size(1);
  PackedRows out;
  out.rows = R;
  out.padded = R * T;
  std::vector<int64_t> tok, pos, pred, target, row_of, count(static_cast<size_t>(R), 0), last(static_cast<size_t>(R));
  std::vector<BlockSpec> prompt_blocks, response_blocks;
  std::vector<int64_t> prompt;           // the current group's prompt ids
  int64_t prompt_at = 0, p = 0;          // where it is packed, its length
  for (int64_t r = 0; r < R; ++r) {
    std::vector<int64_t> real;  // the row's real token positions, in order
    for (int64_t t = 0; t < T; ++t)
      if (mask[r][t] != 0) real.push_back(t);
    if (real.empty()) throw InputError("packing: row " + std::to_string(r) + " has no real token");
    size_t first = 0;  // the first response token
    while (first < real.size() && resp[r][real[first]] == 0) ++first;
    std::vector<int64_t> row_prompt;
    for (size_t i = 0; i < first; ++i) row_prompt.push_back(ids[r][real[i]]);
    if (r == 0 || row_prompt != prompt) {  // a new group: pack its prompt once
      prompt = std::move(row_prompt);
      prompt_at = static_cast<int64_t>(tok.size());
      p = static_cast<int64_t>(prompt.size());
      for (int64_t i = 0; i < p; ++i) tok.push_back(prompt[static_cast<size_t>(i)]), pos.push_back(i);
      if (p > 0) prompt_blocks.push_back({span(prompt_at, p), span(prompt_at, p), 0});
    }
    const auto at = static_cast<int64_t>(tok.size()), s = static_cast<int64_t>(real.size() - first);
    for (int64_t i = 0; i < s; ++i) {
      const int64_t t = real[first + static_cast<size_t>(i)];
      tok.push_back(ids[r][t]);
      pos.push_back(p + i);
      const int64_t before = i > 0 ? at + i - 1 : (p > 0 ? prompt_at + p - 1 : -1);  // the token predicting it
      if (resp[r][t] == 0 || before < 0) continue;
      pred.push_back(before), target.push_back(ids[r][t]), row_of.push_back(r);
      ++count[static_cast<size_t>(r)];
    }
    if (s > 0) {
      BlockSpec b{span(at, s), span(prompt_at, p), p};
      b.key.insert(b.key.end(), b.query.begin(), b.query.end());
      response_blocks.push_back(std::move(b));
    }
    // The row's tokens are prompt_at … prompt_at+p-1 then at … at+s-1: the last one not skipped.
    std::vector<int64_t> order = span(prompt_at, p);
    for (int64_t i = 0; i < s; ++i) order.push_back(at + i);
    int64_t& l = last[static_cast<size_t>(r)];
    l = order.front();
    for (auto it = order.rbegin(); it != order.rend(); ++it)
      if (!score_skip_id || tok[static_cast<size_t>(*it)] != *score_skip_id) {
        l = *it;
        break;
      }
  }
  std::vector<int64_t> scatter(tok.size(), -1);
  int64_t slots = 0;
  for (const auto* specs : {&prompt_blocks, &response_blocks}) {
    if (specs->empty()) continue;
    out.input.blocks.push_back(make_blocks(*specs, scatter, slots));
    slots += out.input.blocks.back().count * out.input.blocks.back().nq;
  }
  auto on = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(device); };
  out.input.ids = on(tok);
  out.input.pos = on(pos);
  out.input.scatter = on(scatter);
  for (auto& b : out.input.blocks) b.query = b.query.to(device), b.key = b.key.to(device), b.allowed = b.allowed.to(device);
  out.input.varlen = make_varlen({&prompt_blocks, &response_blocks}, tok.size(), device);
  out.pred = on(pred);
  out.target = on(target);
  out.row = on(row_of);
  out.count = on(count);
  out.last = on(last);
  return out;
}

at::Tensor sequence_scores(const Decoder& rm, const at::Tensor& ids, const at::Tensor& mask,
                           const at::Tensor& response_mask, Layout layout) {
  if (layout == Layout::padded) return rm.scores(ids, mask);
  if (!rm.score.defined()) throw InputError(rm.config.architecture + " has no score head (it is not a reward model)");
  const PackedRows p = pack_rows(ids, mask, response_mask, rm.device(), rm.config.pad_token_id);
  const at::Tensor h = rm.hidden_states_packed(p.input);  // h: [N, H]
  return at::linear(h.index_select(0, p.last), rm.score);  // [R, L]
}

}  // namespace hps::model

#include "model/prefix_cache.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace hps::model {

namespace {

// slot[r] = group[r] · per_group + (r's rank among its group's rows): the [G, per_group] layout in which a
// prompt's rows attend to its keys together. One host pass; called when rows change, not per step.
void number_slots(KVCache& c) {
  const at::Tensor g = c.group.to(at::kCPU).contiguous();
  const auto* gp = g.data_ptr<int64_t>();
  const int64_t R = g.numel(), G = c.prefix_valid.size(0);
  std::vector<int64_t> count(static_cast<size_t>(G), 0), rank(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) rank[static_cast<size_t>(r)] = count[static_cast<size_t>(gp[r])]++;
  c.per_group = std::max<int64_t>(1, count.empty() ? 1 : *std::max_element(count.begin(), count.end()));
  std::vector<int64_t> slot(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) slot[static_cast<size_t>(r)] = gp[r] * c.per_group + rank[static_cast<size_t>(r)];
  c.slot = at::tensor(slot, at::kLong).to(c.group.device());
}

// The prefix columns from the first one any prompt uses (prompts are left-padded: a dropped long prompt
// leaves columns no remaining prompt reads).
void trim_prefix_columns(KVCache& c) {
  if (c.prefix_valid.size(0) == 0) return;
  const at::Tensor used = c.prefix_valid.any(0);  // used: [P]
  if (!used.any().item<bool>()) return;
  const int64_t first = used.to(at::kLong).argmax().item<int64_t>(), P = c.prefix_valid.size(1);
  if (first == 0) return;
  for (auto* v : {&c.pk, &c.pv})
    for (auto& x : *v) x = x.narrow(2, first, P - first);
  c.prefix_valid = c.prefix_valid.narrow(1, first, P - first);
  c.prefix_pos = c.prefix_pos.narrow(1, first, P - first);
}

}  // namespace

void share_prefix(KVCache& c, int64_t n, int64_t capacity) {
  if (c.shared_prefix()) throw InternalError("share_prefix: the cache already shares its prompts");
  const int64_t G = c.key_valid.size(0), P = c.length;
  for (size_t l = 0; l < c.k.size(); ++l) {
    // Copied out of the prefill's buffer (which may be wider: its columns past P are freed with it).
    c.pk.push_back(c.k[l].narrow(2, 0, P).contiguous());  // pk: [G, Hkv, P, D]
    c.pv.push_back(c.v[l].narrow(2, 0, P).contiguous());
    c.k[l] = at::zeros({G * n, c.k[l].size(1), capacity, c.k[l].size(3)}, c.k[l].options());  // [G·n, Hkv, cap, D]
    c.v[l] = at::zeros_like(c.k[l]);
  }
  c.prefix_valid = c.key_valid.narrow(1, 0, P).contiguous();                      // [G, P]
  c.prefix_pos = (c.prefix_valid.to(at::kLong).cumsum(1) - 1).clamp_min(0);     // as the prefill counted them
  c.group = at::arange(G, c.seen.options()).repeat_interleave(n);               // [G·n]
  c.key_valid = at::zeros({G * n, capacity}, c.key_valid.options());
  c.seen = c.seen.repeat_interleave(n);
  c.length = 0, c.capacity = capacity;
  number_slots(c);
}

void keep_prefix_rows(KVCache& c, const at::Tensor& keep) {
  at::Tensor g = c.group.index_select(0, keep);  // g: [K]
  const int64_t G = c.prefix_valid.size(0);
  const at::Tensor read = at::zeros({G}, g.options().dtype(at::kBool)).index_fill_(0, g, true);  // read: [G]
  const at::Tensor kept = read.nonzero().view(-1);                                             // kept: [G']
  if (kept.size(0) < G) {
    g = (read.to(at::kLong).cumsum(0) - 1).index_select(0, g);  // old prompt index → new
    for (auto* v : {&c.pk, &c.pv})
      for (auto& x : *v) x = x.index_select(0, kept);
    c.prefix_valid = c.prefix_valid.index_select(0, kept);
    c.prefix_pos = c.prefix_pos.index_select(0, kept);
    trim_prefix_columns(c);
  }
  c.group = g;
  number_slots(c);
}

void append_prefix_rows(KVCache& a, const KVCache& b) {
  const int64_t Ga = a.prefix_valid.size(0), Gb = b.prefix_valid.size(0);
  const int64_t Pa = a.prefix_valid.size(1), Pb = b.prefix_valid.size(1), P = std::max(Pa, Pb);
  auto join = [&](const at::Tensor& x, const at::Tensor& y, int64_t dim) {  // prompts on dim 0, columns on `dim`
    auto sizes = x.sizes().vec();
    sizes[0] = Ga + Gb, sizes[static_cast<size_t>(dim)] = P;
    at::Tensor z = at::zeros(sizes, x.options());
    z.narrow(0, 0, Ga).narrow(dim, P - Pa, Pa).copy_(x);
    z.narrow(0, Ga, Gb).narrow(dim, P - Pb, Pb).copy_(y);
    return z;
  };
  for (size_t l = 0; l < a.pk.size(); ++l) a.pk[l] = join(a.pk[l], b.pk[l], 2), a.pv[l] = join(a.pv[l], b.pv[l], 2);
  a.prefix_valid = join(a.prefix_valid, b.prefix_valid, 1);
  a.prefix_pos = join(a.prefix_pos, b.prefix_pos, 1);
  a.group = at::cat({a.group, b.group + Ga});
  number_slots(a);
}

at::Tensor prefix_attention(const KVCache& c, size_t layer, const at::Tensor& q, const at::Tensor& k_own,
                            const at::Tensor& v_own, const at::Tensor& own_mask, const at::Tensor& q_pos, int64_t window) {
  const int64_t R = q.size(0), Hq = q.size(1), D = q.size(3), Hkv = k_own.size(1), gq = Hq / Hkv;
  const int64_t G = c.prefix_valid.size(0), P = c.prefix_valid.size(1), S = c.per_group;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const double inf = std::numeric_limits<double>::infinity();
  const at::Tensor qh = q.reshape({R, Hkv, gq, D});  // qh: [R, Hkv, gq, D] (query head h reads kv head h / gq)
  // Each part's scores → (log-sum-exp, softmax); a part with no visible key has lse −inf and weight 0.
  auto softmax_lse = [](const at::Tensor& s) {
    at::Tensor lse = at::logsumexp(s, -1, /*keepdim=*/true);
    return std::make_pair(lse, at::where(at::isfinite(lse), at::exp(s - lse), at::zeros({}, s.options())));
  };
  // The prompt's keys, a prompt's rows together: the rows' queries laid out [G, S] by slot.
  at::Tensor qg = at::zeros({G * S, Hkv, gq, D}, q.options()).index_copy_(0, c.slot, qh);
  qg = qg.view({G, S, Hkv, gq, D}).permute({0, 2, 1, 3, 4}).reshape({G, Hkv, S * gq, D});        // [G, Hkv, S·gq, D]
  at::Tensor s_pre = at::matmul(qg, c.pk[layer].transpose(-1, -2)).to(at::kFloat).mul_(scale);  // [G, Hkv, S·gq, P]
  at::Tensor seen = c.prefix_valid.view({G, 1, 1, 1, P});
  if (window > 0) {  // positions, as the copied cache's window counts them
    const at::Tensor qp = at::zeros({G * S}, q_pos.options()).index_copy_(0, c.slot, q_pos).view({G, 1, S, 1, 1});
    seen = seen.logical_and(qp - c.prefix_pos.view({G, 1, 1, 1, P}) < window);
  }
  s_pre = s_pre.view({G, Hkv, S, gq, P}).masked_fill(seen.logical_not(), -inf);
  auto [lse_pre, p_pre] = softmax_lse(s_pre);  // [G, Hkv, S, gq, 1], [G, Hkv, S, gq, P]
  at::Tensor o_pre = at::matmul(p_pre.to(q.scalar_type()).view({G, Hkv, S * gq, P}), c.pv[layer]);  // [G, Hkv, S·gq, D]
  auto to_rows = [&](const at::Tensor& x, int64_t last) {  // [G, Hkv, S, gq, last] → [R, Hkv, gq, last]
    return x.reshape({G, Hkv, S, gq, last}).permute({0, 2, 1, 3, 4}).reshape({G * S, Hkv, gq, last}).index_select(0, c.slot);
  };
  o_pre = to_rows(o_pre, D).to(at::kFloat);
  lse_pre = to_rows(lse_pre, 1);
  // The row's own keys.
  at::Tensor s_own = at::matmul(qh, k_own.transpose(-1, -2)).to(at::kFloat).mul_(scale);  // [R, Hkv, gq, L]
  if (own_mask.defined()) s_own = s_own.masked_fill(own_mask.logical_not(), -inf);      // own_mask: [R, 1, 1, L]
  auto [lse_own, p_own] = softmax_lse(s_own);
  const at::Tensor o_own = at::matmul(p_own.to(q.scalar_type()), v_own).to(at::kFloat);  // [R, Hkv, gq, D]
  // softmax over [prompt; own] = the parts' outputs weighted by their share of the total exp-sum.
  at::Tensor m = at::maximum(lse_pre, lse_own);
  m = at::where(at::isfinite(m), m, at::zeros({}, m.options()));
  const at::Tensor w_pre = at::exp(lse_pre - m), w_own = at::exp(lse_own - m);  // [R, Hkv, gq, 1]
  const at::Tensor o = (w_pre * o_pre + w_own * o_own) / (w_pre + w_own).clamp_min(1e-30);
  return o.to(q.scalar_type()).reshape({R, Hq, 1, D});
}

}  // namespace hps::model

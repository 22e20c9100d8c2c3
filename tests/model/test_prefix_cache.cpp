// One prompt cache per prompt (model/prefix_cache.hpp): decode attention over [the prompt's keys, held once;
// the row's own keys] equals plain attention over the row's concatenated keys — with left-padded prompts of
// different lengths, grouped-query heads, rows that left (a whole prompt dropped, its columns trimmed),
// invalid own keys, a sliding window, and two caches joined — and the prompt is stored once, not n times.
#include <gtest/gtest.h>

#include <vector>

#include "model/prefix_cache.hpp"

namespace hps::model {
namespace {

constexpr int64_t kHkv = 2, kHq = 4, kD = 8, kOwn = 4;

// A prefilled cache of prompts with these lengths, left-padded, random K/V.
KVCache prefilled(const std::vector<int64_t>& lengths) {
  int64_t P = 0;
  for (int64_t l : lengths) P = std::max(P, l);
  const auto G = static_cast<int64_t>(lengths.size());
  KVCache c;
  c.k.push_back(at::randn({G, kHkv, P, kD}));
  c.v.push_back(at::randn({G, kHkv, P, kD}));
  c.key_valid = at::zeros({G, P}, at::kBool);
  for (int64_t g = 0; g < G; ++g) c.key_valid[g].narrow(0, P - lengths[static_cast<size_t>(g)], lengths[static_cast<size_t>(g)]).fill_(true);
  c.seen = at::tensor(lengths, at::kLong);
  c.length = c.capacity = P;
  return c;
}

// Row r of the cache attends over its prompt's valid keys then its own valid keys (positions: prompt
// 0 … len−1, own len + j), softmax computed directly: [Hq, D].
at::Tensor reference(const KVCache& c, int64_t r, const at::Tensor& q, const at::Tensor& own_valid, int64_t window) {
  const int64_t g = c.group[r].item<int64_t>(), pos_q = c.seen[r].item<int64_t>();
  std::vector<at::Tensor> ks, vs;
  std::vector<int64_t> pos;
  for (int64_t j = 0; j < c.prefix_valid.size(1); ++j)
    if (c.prefix_valid[g][j].item<bool>())
      ks.push_back(c.pk[0][g].select(1, j)), vs.push_back(c.pv[0][g].select(1, j)), pos.push_back(c.prefix_pos[g][j].item<int64_t>());
  const int64_t len = static_cast<int64_t>(pos.size());
  for (int64_t j = 0; j < kOwn; ++j)
    if (own_valid[r][j].item<bool>()) ks.push_back(c.k[0][r].select(1, j)), vs.push_back(c.v[0][r].select(1, j)), pos.push_back(len + j);
  at::Tensor K = at::stack(ks, 1), V = at::stack(vs, 1);               // [Hkv, S, D]
  K = K.repeat_interleave(kHq / kHkv, 0), V = V.repeat_interleave(kHq / kHkv, 0);
  at::Tensor s = at::matmul(q[r].squeeze(1).unsqueeze(1), K.transpose(1, 2)).squeeze(1) / std::sqrt(double(kD));  // [Hq, S]
  const at::Tensor p = at::tensor(pos, at::kLong);
  if (window > 0) s = s.masked_fill((pos_q - p >= window).unsqueeze(0), -INFINITY);
  return at::matmul(at::softmax(s, 1).unsqueeze(1), V).squeeze(1);  // [Hq, D]
}

// The cache's tensors on `device` (the host copy stays the reference's input).
KVCache on(const KVCache& c, const at::Device& device) {
  KVCache d = c;
  for (auto* v : {&d.k, &d.v, &d.pk, &d.pv})
    for (auto& x : *v) x = x.to(device);
  for (at::Tensor* t : {&d.key_valid, &d.seen, &d.prefix_valid, &d.prefix_pos, &d.group, &d.slot}) *t = t->to(device);
  return d;
}

void expect_matches_reference(const KVCache& c, int64_t window, const at::Device& device = at::kCPU) {
  const int64_t R = c.group.size(0);
  const at::Tensor q = at::randn({R, kHq, 1, kD});
  at::Tensor own_valid = at::rand({R, kOwn}) > 0.3;
  own_valid.select(1, kOwn - 1).fill_(true);  // the new token itself
  // The own keys' mask carries the window too (as the decoder's attention inputs build it).
  at::Tensor own_mask = own_valid;
  if (window > 0) own_mask = own_mask.logical_and((kOwn - 1 - at::arange(kOwn, at::kLong) < window).unsqueeze(0));
  const KVCache dc = on(c, device);
  const at::Tensor got = prefix_attention(dc, 0, q.to(device), dc.k[0], dc.v[0], own_mask.view({R, 1, 1, kOwn}).to(device),
                                          dc.seen, window).cpu();
  for (int64_t r = 0; r < R; ++r)
    EXPECT_LE((got[r].squeeze(1) - reference(c, r, q, own_valid, window)).abs().max().item<double>(), 1e-5)
        << "row " << r << " window " << window;
}

// Fills the rows' own keys as a decode would have (kOwn tokens each).
void fill_own(KVCache& c) {
  c.k[0].normal_(), c.v[0].normal_();
  c.seen = c.seen + kOwn - 1;  // the last own token is the query's
}

TEST(PrefixCache, AttentionEqualsAttentionOverPromptThenOwnKeys) {
  at::manual_seed(3);
  KVCache c = prefilled({5, 2, 7});
  share_prefix(c, 3, kOwn);
  ASSERT_EQ(c.pk[0].sizes(), (std::vector<int64_t>{3, kHkv, 7, kD}));  // each prompt once
  ASSERT_EQ(c.k[0].sizes(), (std::vector<int64_t>{9, kHkv, kOwn, kD}));  // 3 rows per prompt: own tokens only
  fill_own(c);
  for (int64_t window : {0, 3, 6}) expect_matches_reference(c, window);
  // Rows leave: prompt 0 entirely and one row of prompt 1 (the prompts after it are renumbered) …
  auto leave = [&](const std::vector<int64_t>& rows) {
    const at::Tensor keep = at::tensor(rows, at::kLong);
    for (auto* v : {&c.k, &c.v}) (*v)[0] = (*v)[0].index_select(0, keep);
    c.seen = c.seen.index_select(0, keep);
    keep_prefix_rows(c, keep);
  };
  leave({4, 5, 6, 7, 8});
  EXPECT_TRUE(at::equal(c.group, at::tensor(std::vector<int64_t>{0, 0, 1, 1, 1}, at::kLong)));
  EXPECT_EQ(c.per_group, 3);
  for (int64_t window : {0, 3}) expect_matches_reference(c, window);
  // … then prompt 2 (the longest): its columns go with it.
  leave({0, 1});
  EXPECT_EQ(c.pk[0].size(0), 1);
  EXPECT_EQ(c.prefix_valid.size(1), 2);
  for (int64_t window : {0, 3}) expect_matches_reference(c, window);
}

TEST(PrefixCache, JoinedCachesAttendAsEachAlone) {
  at::manual_seed(4);
  KVCache a = prefilled({3, 6}), b = prefilled({9});
  share_prefix(a, 2, kOwn), share_prefix(b, 2, kOwn);
  fill_own(a), fill_own(b);
  KVCache joined = a;
  for (size_t l = 0; l < a.k.size(); ++l)
    joined.k[l] = at::cat({a.k[l], b.k[l]}), joined.v[l] = at::cat({a.v[l], b.v[l]});
  joined.seen = at::cat({a.seen, b.seen});
  append_prefix_rows(joined, b);
  EXPECT_EQ(joined.prefix_valid.size(0), 3);
  EXPECT_EQ(joined.prefix_valid.size(1), 9);
  EXPECT_TRUE(at::equal(joined.group, at::tensor(std::vector<int64_t>{0, 0, 1, 1, 2, 2}, at::kLong)));
  for (int64_t window : {0, 4}) expect_matches_reference(joined, window);
}

// On CUDA (skipped without a GPU; scripts/gpu_check.sh runs it): the same attention through CUDA's kernels.
TEST(PrefixCache, CudaAttentionEqualsTheReference) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device: the CPU tests above cover the prompt cache";
  at::manual_seed(5);
  KVCache c = prefilled({5, 2, 7});
  share_prefix(c, 3, kOwn);
  fill_own(c);
  for (int64_t window : {0, 3}) expect_matches_reference(c, window, at::Device(at::kCUDA, 0));
}

}  // namespace
}  // namespace hps::model

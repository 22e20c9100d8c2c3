#include "generate/engine.hpp"

#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "core/error.hpp"
#include "model/prefix_cache.hpp"

namespace hps::generate {

namespace {

// The decode batch: one row per sample in flight.
struct Rows {
  model::KVCache cache;
  at::Tensor h;                 // h: [R, H], what each row samples its next token from
  at::Tensor done;              // done: [R] bool
  at::Tensor uniforms;          // uniforms: [R, max_new_tokens], each row's sample's stream
  at::Tensor step;              // step: [R] int64, tokens the row's sample has drawn
  std::vector<int64_t> sample;  // [R] (host): the sample each row decodes, prompt · n + j
  int64_t rows() const { return static_cast<int64_t>(sample.size()); }
};

// Prompts [i0, i1) left-padded and prefilled together (the prompt is computed once, not once per sample),
// then the prompt's n samples: rows that share its cache (`share`: model/prefix_cache.hpp) or each hold a
// copy of it.
Rows prefill(const model::Decoder& d, const std::vector<std::vector<int64_t>>& prompts, int64_t i0, int64_t i1,
             const SamplingConfig& c, int64_t pad_id, const at::Tensor& uniforms, bool share) {
  const int64_t B = i1 - i0;
  int64_t P = 0;
  for (int64_t i = i0; i < i1; ++i) P = std::max<int64_t>(P, static_cast<int64_t>(prompts[static_cast<size_t>(i)].size()));
  // Left padding, so that every row's last prompt token sits in the last column.
  at::Tensor ids = at::full({B, P}, pad_id, at::kLong), mask = at::zeros({B, P}, at::kLong);  // [B, P]
  auto* id = ids.data_ptr<int64_t>();  // filled through the host pointers: one tensor op per token was the
  auto* mk = mask.data_ptr<int64_t>();  // prefill's cost for long prompts
  for (int64_t i = 0; i < B; ++i) {
    const auto& p = prompts[static_cast<size_t>(i0 + i)];
    const int64_t off = i * P + P - static_cast<int64_t>(p.size());
    std::copy(p.begin(), p.end(), id + off);
    std::fill(mk + off, mk + off + static_cast<int64_t>(p.size()), 1);
  }
  Rows r;
  r.cache = d.make_cache(B, P + c.max_new_tokens);
  r.h = d.hidden_states_cached(ids.to(d.device()), mask.to(d.device()), r.cache).select(1, P - 1);  // [B, H]
  if (share) {
    model::share_prefix(r.cache, c.n, c.max_new_tokens);
    r.h = r.h.repeat_interleave(c.n, 0);
  } else if (c.n > 1) {
    for (auto* v : {&r.cache.k, &r.cache.v})
      for (auto& t : *v) t = t.repeat_interleave(c.n, 0);
    r.cache.key_valid = r.cache.key_valid.repeat_interleave(c.n, 0);
    r.cache.seen = r.cache.seen.repeat_interleave(c.n, 0);
    r.h = r.h.repeat_interleave(c.n, 0);
  }
  const int64_t R = B * c.n;
  r.done = at::zeros({R}, at::TensorOptions().dtype(at::kBool).device(d.device()));
  r.step = at::zeros({R}, at::TensorOptions().dtype(at::kLong).device(d.device()));
  r.uniforms = uniforms.narrow(0, i0 * c.n, R);
  for (int64_t s = i0 * c.n; s < i1 * c.n; ++s) r.sample.push_back(s);
  return r;
}

// Keeps the rows listed in `keep` ([K] int64 on the rows' device).
void keep_rows(Rows& r, const at::Tensor& keep) {
  for (auto* v : {&r.cache.k, &r.cache.v})
    for (auto& x : *v) x = x.index_select(0, keep);
  r.cache.key_valid = r.cache.key_valid.index_select(0, keep);
  r.cache.seen = r.cache.seen.index_select(0, keep);
  if (r.cache.shared_prefix()) model::keep_prefix_rows(r.cache, keep);
  r.h = r.h.index_select(0, keep), r.done = r.done.index_select(0, keep);
  r.uniforms = r.uniforms.index_select(0, keep), r.step = r.step.index_select(0, keep);
  const at::Tensor k = keep.cpu();
  const auto* kp = k.data_ptr<int64_t>();
  std::vector<int64_t> sample;
  for (int64_t i = 0; i < k.size(0); ++i) sample.push_back(r.sample[static_cast<size_t>(kp[i])]);
  r.sample = std::move(sample);
  // Columns no remaining row uses (the histories of rows that left) are dropped from the view attention
  // reads: its cost follows the oldest live row, not the oldest row ever.
  const at::Tensor used = r.cache.key_valid.narrow(1, 0, r.cache.length).any(0);  // used: [length]
  const int64_t first = used.any().item<bool>() ? used.to(at::kLong).argmax().item<int64_t>() : r.cache.length;
  if (first == 0) return;
  for (auto* v : {&r.cache.k, &r.cache.v})
    for (auto& x : *v) x = x.narrow(2, first, r.cache.capacity - first);
  r.cache.key_valid = r.cache.key_valid.narrow(1, first, r.cache.capacity - first);
  r.cache.length -= first, r.cache.capacity -= first;
}

// Appends b's rows to a's. Cache columns are storage only — each row's positions (`seen`) and valid keys
// travel with it — so the two column ranges in use are right-aligned in a new cache: every row's history
// stays contiguous and ends at the last column, and columns no row uses any more are dropped.
void append_rows(Rows& a, Rows b, int64_t room) {
  if (a.rows() == 0) {
    a = std::move(b);
    return;
  }
  const int64_t Ra = a.rows(), Rb = b.rows(), La = a.cache.length, Lb = b.cache.length;
  const at::Tensor used = a.cache.key_valid.narrow(1, 0, La).any(0);  // used: [La]
  const int64_t first = used.any().item<bool>() ? used.to(at::kLong).argmax().item<int64_t>() : La;
  const int64_t wa = La - first, L = std::max(wa, Lb), cap = L + room;
  auto join = [&](const at::Tensor& x, const at::Tensor& y, int64_t dim) {  // rows on dim 0, columns on `dim`
    auto sizes = x.sizes().vec();
    sizes[0] = Ra + Rb, sizes[static_cast<size_t>(dim)] = cap;
    at::Tensor z = at::zeros(sizes, x.options());
    z.narrow(0, 0, Ra).narrow(dim, L - wa, wa).copy_(x.narrow(dim, first, wa));
    z.narrow(0, Ra, Rb).narrow(dim, L - Lb, Lb).copy_(y.narrow(dim, 0, Lb));
    return z;
  };
  for (size_t l = 0; l < a.cache.k.size(); ++l) {
    a.cache.k[l] = join(a.cache.k[l], b.cache.k[l], 2);
    a.cache.v[l] = join(a.cache.v[l], b.cache.v[l], 2);
  }
  a.cache.key_valid = join(a.cache.key_valid, b.cache.key_valid, 1);
  if (a.cache.shared_prefix()) model::append_prefix_rows(a.cache, b.cache);
  a.cache.seen = at::cat({a.cache.seen, b.cache.seen});
  a.cache.length = L, a.cache.capacity = cap;
  a.h = at::cat({a.h, b.h}), a.done = at::cat({a.done, b.done});
  a.uniforms = at::cat({a.uniforms, b.uniforms}), a.step = at::cat({a.step, b.step});
  a.sample.insert(a.sample.end(), b.sample.begin(), b.sample.end());
}

}  // namespace

std::vector<std::vector<std::vector<int64_t>>> generate_ids(const model::Decoder& d,
                                                             const std::vector<std::vector<int64_t>>& prompts,
                                                             const SamplingConfig& c, const std::vector<int64_t>& eos_ids,
                                                             int64_t pad_id, uint64_t seed, int64_t vocab_limit,
                                                             std::vector<uint64_t> streams, int64_t max_rows,
                                                             bool share_prompt) {
  validate(c);
  if (!d.lm_head.defined()) throw InputError(d.config.architecture + " has no language-model head to generate with");
  c10::InferenceMode no_grad;
  const auto B = static_cast<int64_t>(prompts.size());
  for (const auto& p : prompts)
    if (p.empty()) throw InputError("generate: empty prompt");
  const at::Device dev = d.device();
  if (streams.empty())
    for (int64_t i = 0; i < B; ++i) streams.push_back(static_cast<uint64_t>(i));
  if (static_cast<int64_t>(streams.size()) != B) throw InternalError("generate_ids: one stream id per prompt");
  const int64_t N = B * c.n;
  const at::Tensor uniforms = sample_uniforms(seed, streams, c.n, c.max_new_tokens).to(dev);  // [N, max_new_tokens]
  const int64_t slots = max_rows > 0 ? std::max(max_rows, c.n) : N;  // rows in flight; at least one prompt's
  int64_t next_prompt = 0;
  auto admit = [&](Rows& r) {  // the next whole prompts that fit in the free rows
    const int64_t i1 = std::min(B, next_prompt + (slots - r.rows()) / c.n);
    if (i1 <= next_prompt) return;
    append_rows(r, prefill(d, prompts, next_prompt, i1, c, pad_id, uniforms, share_prompt && c.n > 1), c.max_new_tokens);
    next_prompt = i1;
  };
  Rows r;
  admit(r);
  const at::Tensor eos = at::tensor(eos_ids.empty() ? std::vector<int64_t>{-1} : eos_ids, at::kLong).to(dev);
  std::vector<at::Tensor> steps, step_rows;  // per step: the tokens [R] and the samples of those rows
  for (int64_t t = 0; r.rows() > 0; ++t) {
    at::Tensor logits = at::linear(r.h, d.lm_head);  // [R, V]
    if (vocab_limit > 0 && vocab_limit < logits.size(1)) logits = logits.narrow(1, 0, vocab_limit);
    const at::Tensor finite = logits.isfinite().all();  // checked with the live count below: one host sync a step
    const at::Tensor u = r.uniforms.gather(1, r.step.clamp_max(c.max_new_tokens - 1).unsqueeze(1)).squeeze(1);  // [R]
    at::Tensor next = sample_next(logits, c, u);  // [R]
    next = at::where(r.done, at::full({}, pad_id, next.options()), next);
    steps.push_back(next);
    step_rows.push_back(at::tensor(r.sample, at::kLong));
    r.step = r.step + 1;
    r.done = r.done.logical_or(at::isin(next, eos)).logical_or(r.step >= c.max_new_tokens);
    const at::Tensor flags = at::stack({finite.to(at::kLong), r.done.logical_not().sum()}).cpu();
    // NaN logits would have drawn garbage (nothing of this step is kept).
    if (flags[0].item<int64_t>() == 0)
      throw NumericError("generate: non-finite logits at new token " + std::to_string(t + 1) +
                         " (NaN or inf in the model's weights or activations; `hps model inspect` checks the weights)");
    const int64_t R = r.rows(), live = flags[1].item<int64_t>();
    const bool pending = next_prompt < B;
    if (live == 0 && !pending) break;
    // Finished rows leave once they are a quarter of the rows — and waiting prompts take their place
    // (continuous batching): the decode cost follows the live samples, not the batch's longest one. Not at
    // every ended sample: each change of rows copies the cache.
    if (live * 4 <= R * 3) {
      const at::Tensor keep = r.done.logical_not().nonzero().view(-1);  // keep: [live]
      next = next.index_select(0, keep);
      keep_rows(r, keep);
    }
    // Rows not yet gone feed padding that no other row attends to.
    if (r.rows() > 0)
      r.h = d.hidden_states_cached(next.unsqueeze(1), r.done.logical_not().to(at::kLong).unsqueeze(1), r.cache).squeeze(1);
    if (r.rows() == live) admit(r);  // only when no ended row still holds a place
  }
  std::vector<std::vector<int64_t>> seqs(static_cast<size_t>(N));
  std::vector<char> ended(static_cast<size_t>(N), 0);
  for (size_t t = 0; t < steps.size(); ++t) {
    const at::Tensor tok = steps[t].cpu();
    const auto* tk = tok.data_ptr<int64_t>();
    const auto* rs = step_rows[t].data_ptr<int64_t>();
    for (int64_t i = 0; i < tok.size(0); ++i) {
      const auto s = static_cast<size_t>(rs[i]);
      if (ended[s]) continue;
      if (std::find(eos_ids.begin(), eos_ids.end(), tk[i]) != eos_ids.end()) ended[s] = 1;
      else if (static_cast<int64_t>(seqs[s].size()) < c.max_new_tokens) seqs[s].push_back(tk[i]);
    }
  }
  std::vector<std::vector<std::vector<int64_t>>> res(static_cast<size_t>(B));
  for (int64_t s = 0; s < N; ++s) res[static_cast<size_t>(s / c.n)].push_back(std::move(seqs[static_cast<size_t>(s)]));
  return res;
}

}  // namespace hps::generate

#include "generate/engine.hpp"

#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "core/error.hpp"

namespace hps::generate {

std::vector<std::vector<std::vector<int64_t>>> generate_ids(const model::Decoder& d,
                                                             const std::vector<std::vector<int64_t>>& prompts,
                                                             const SamplingConfig& c, const std::vector<int64_t>& eos_ids,
                                                             int64_t pad_id, uint64_t seed, int64_t vocab_limit,
                                                             std::vector<uint64_t> streams) {
  validate(c);
  if (!d.lm_head.defined()) throw InputError(d.config.architecture + " has no language-model head to generate with");
  c10::InferenceMode no_grad;
  const auto B = static_cast<int64_t>(prompts.size());
  int64_t P = 0;
  for (const auto& p : prompts) {
    if (p.empty()) throw InputError("generate: empty prompt");
    P = std::max<int64_t>(P, static_cast<int64_t>(p.size()));
  }
  const at::Device dev = d.device();
  // Left padding, so that every row's last prompt token sits in the last column.
  at::Tensor ids = at::full({B, P}, pad_id, at::kLong), mask = at::zeros({B, P}, at::kLong);
  for (int64_t i = 0; i < B; ++i) {
    const auto& p = prompts[static_cast<size_t>(i)];
    const int64_t off = P - static_cast<int64_t>(p.size());
    for (size_t t = 0; t < p.size(); ++t) ids[i][off + static_cast<int64_t>(t)] = p[t], mask[i][off + static_cast<int64_t>(t)] = 1;
  }
  ids = ids.to(dev), mask = mask.to(dev);
  model::KVCache cache = d.make_cache(B, P + c.max_new_tokens);
  at::Tensor h = d.hidden_states_cached(ids, mask, cache).select(1, P - 1);  // [B, H]
  // Share the prefill across the n samples of each prompt: repeat every cache row n times.
  const int64_t N = B * c.n;
  if (c.n > 1) {
    for (auto* v : {&cache.k, &cache.v})
      for (auto& t : *v) t = t.repeat_interleave(c.n, 0);
    cache.key_valid = cache.key_valid.repeat_interleave(c.n, 0);
    cache.seen = cache.seen.repeat_interleave(c.n, 0);
    h = h.repeat_interleave(c.n, 0);
  }
  if (streams.empty())
    for (int64_t i = 0; i < B; ++i) streams.push_back(static_cast<uint64_t>(i));
  if (static_cast<int64_t>(streams.size()) != B) throw InternalError("generate_ids: one stream id per prompt");
  const at::Tensor uniforms = sample_uniforms(seed, streams, c.n, c.max_new_tokens).to(dev);  // [N, max_new_tokens]
  const at::Tensor eos = at::tensor(eos_ids.empty() ? std::vector<int64_t>{-1} : eos_ids, at::kLong).to(dev);
  at::Tensor done = at::zeros({N}, at::TensorOptions().dtype(at::kBool).device(dev));  // done: [rows]
  at::Tensor row_sample = at::arange(N, at::kLong);  // row_sample: [rows] (host), the sample each row decodes
  at::Tensor row_uniforms = uniforms;                 // row_uniforms: [rows, max_new_tokens]
  std::vector<at::Tensor> steps, step_rows;           // per step: the tokens [rows] and row_sample then
  for (int64_t t = 0; t < c.max_new_tokens; ++t) {
    at::Tensor logits = at::linear(h, d.lm_head);          // [rows, V]
    if (vocab_limit > 0 && vocab_limit < logits.size(1)) logits = logits.narrow(1, 0, vocab_limit);
    // NaN logits would sample garbage silently (argmax) or fail inside multinomial (a device assert on CUDA).
    if (!logits.isfinite().all().item<bool>())
      throw NumericError("generate: non-finite logits at new token " + std::to_string(t + 1) +
                         " (NaN or inf in the model's weights or activations; `hps model inspect` checks the weights)");
    at::Tensor next = sample_next(logits, c, row_uniforms.select(1, t));  // [rows]
    next = at::where(done, at::full({}, pad_id, next.options()), next);
    steps.push_back(next);
    step_rows.push_back(row_sample);
    done = done.logical_or(at::isin(next, eos));
    const int64_t rows = done.size(0), live = rows - done.sum().item<int64_t>();
    if (t + 1 == c.max_new_tokens || live == 0) break;
    if (live * 4 <= rows * 3) {  // finished rows leave the batch: the forward's cost follows the live samples
      const at::Tensor keep = done.logical_not().nonzero().view(-1);  // keep: [live]
      for (auto* v : {&cache.k, &cache.v})
        for (auto& x : *v) x = x.index_select(0, keep);
      cache.key_valid = cache.key_valid.index_select(0, keep);
      cache.seen = cache.seen.index_select(0, keep);
      next = next.index_select(0, keep), done = done.index_select(0, keep);
      row_uniforms = row_uniforms.index_select(0, keep);
      row_sample = row_sample.index_select(0, keep.cpu());
    }
    // Finished rows (until they leave) feed padding that no other row attends to.
    h = d.hidden_states_cached(next.unsqueeze(1), done.logical_not().to(at::kLong).unsqueeze(1), cache).squeeze(1);
  }
  std::vector<std::vector<int64_t>> seqs(static_cast<size_t>(N));
  std::vector<char> ended(static_cast<size_t>(N), 0);
  for (size_t t = 0; t < steps.size(); ++t) {
    const at::Tensor tok = steps[t].cpu();
    const auto* tk = tok.data_ptr<int64_t>();
    const auto* rs = step_rows[t].data_ptr<int64_t>();
    for (int64_t r = 0; r < tok.size(0); ++r) {
      const auto s = static_cast<size_t>(rs[r]);
      if (ended[s]) continue;
      if (std::find(eos_ids.begin(), eos_ids.end(), tk[r]) != eos_ids.end()) ended[s] = 1;
      else seqs[s].push_back(tk[r]);
    }
  }
  std::vector<std::vector<std::vector<int64_t>>> res(static_cast<size_t>(B));
  for (int64_t s = 0; s < N; ++s) res[static_cast<size_t>(s / c.n)].push_back(std::move(seqs[static_cast<size_t>(s)]));
  return res;
}

}  // namespace hps::generate

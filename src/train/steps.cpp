#include "train/steps.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/seed.hpp"
#include "model/logprobs.hpp"
#include "train/rm_loss.hpp"

namespace hps::train {

prefs::Selection select_record(const data::PreferenceRecord& r, const prefs::LossConfig& lc, const at::Tensor& u) {
  const auto K = static_cast<int64_t>(r.responses.size());
  // float64, as annotated: the loss reuses this selection and never re-ranks (float32 would merge rewards).
  at::Tensor reward = at::tensor(data::rewards_or_rank(r), at::kDouble).view({1, K});  // reward: [1, K]
  return prefs::select_slots(reward, at::Tensor(), lc, u);
}

namespace {

// Where each forwarded row of a batch goes in a [B, K] tensor: its prompt, its response slot, and the row
// (i·k + j, the batch's row order) it came from. Prompt-only rows of ragged batches are left out.
struct Placement {
  at::Tensor prompt, slot, row;  // each [n] int64 on the CPU, n = forwarded rows
};

Placement placement(const data::Batch& b) {
  std::vector<int64_t> pi, si, ri;
  for (int64_t i = 0; i < b.prompts; ++i)
    for (int64_t j = 0; j < b.k; ++j) {
      const int64_t slot = b.response_index[static_cast<size_t>(i)][static_cast<size_t>(j)];
      if (slot < 0) continue;  // a prompt-only row of a ragged batch
      pi.push_back(i), si.push_back(slot), ri.push_back(i * b.k + j);
    }
  return {at::tensor(pi, at::kLong), at::tensor(si, at::kLong), at::tensor(ri, at::kLong)};
}

// per_row: [B·k] in the batch's row order → [B, K] on per_row's device, `fill` at slots not forwarded.
at::Tensor place_rows(const Placement& p, const at::Tensor& per_row, int64_t B, int64_t K, double fill = 0.0) {
  const at::Device d = per_row.device();
  return at::full({B, K}, fill, per_row.options())
      .index_put({p.prompt.to(d), p.slot.to(d)}, per_row.index_select(0, p.row.to(d)));
}

// The loader's next batch as the rows of a MicroStep; nullopt at the end of its epoch. An empty batch (a
// shard's part of a short last batch) comes back with a zero loss and weight 0: nothing to forward.
std::optional<MicroStep> next_rows(data::PreferenceLoader& ld, const data::Select& select) {
  auto b = ld.next(select);
  if (!b) return std::nullopt;
  MicroStep s;
  s.rows = std::move(*b);
  if (s.rows.prompts == 0) {
    s.loss = at::zeros({}, at::kFloat);
    return s;
  }
  s.tokens = s.rows.mask.sum().item<int64_t>();
  return s;
}

// False for an empty micro-batch (a shard's part of a short last batch): nothing to forward. A chunked step
// with gradients still takes part in backward_scale's agreement on the weights (every rank calls it).
bool begin_rows(const StepModels& m, MicroStep& s, bool grad) {
  if (s.rows.prompts > 0) return true;
  s.forwards = 0;
  if (grad && m.chunked()) m.backward_scale(0.0);
  return false;
}

// The best response (highest reward, first on ties; the first without rewards): what SFT trains on.
std::vector<int64_t> select_best(const data::PreferenceRecord& r) {
  int64_t best = 0;
  for (size_t k = 1; k < r.rewards.size(); ++k)
    if (r.rewards[k] > r.rewards[static_cast<size_t>(best)]) best = static_cast<int64_t>(k);
  return {best};
}

// Per-row log-probs of the batch under d's current state: from `packed` when the step packs, else padded rows.
model::SeqLogprobs row_logprobs(const StepModels& m, const model::Decoder& d, const data::Batch& b,
                                const model::PackedRows* packed) {
  if (packed) return model::packed_sequence_logprobs(d, *packed);
  return model::sequence_logprobs(d, b.ids.to(m.device), b.mask.to(m.device), b.response_mask.to(m.device));
}

std::optional<model::PackedRows> pack(const StepModels& m, const data::Batch& b) {
  if (m.layout != model::Layout::packed) return std::nullopt;
  return model::pack_rows(b.ids, b.mask, b.response_mask, m.device);
}

// Policy (with gradients when `grad`) and reference log-probs of the forwarded rows at their slots of a
// [B, K] batch (ragged K: missing slots invalid). Unforwarded slots hold finite placeholders the loss never
// reads: the selection reads exactly the forwarded slots, and `forwarded` lets it assert so.
prefs::PrefBatch forward_preferences(const StepModels& m, const data::Batch& rows,
                                     const std::vector<std::vector<double>>& rewards, bool grad) {
  const int64_t B = rows.prompts;
  int64_t K = 0;
  for (const auto& r : rewards) K = std::max<int64_t>(K, static_cast<int64_t>(r.size()));
  const auto packed = pack(m, rows);  // one packing for the policy and the reference forward
  const model::PackedRows* p_rows = packed ? &*packed : nullptr;
  at::Tensor pol;  // pol: [B·k] fp32
  {
    c10::AutoGradMode mode(grad);
    model::AutocastGuard cast(m.device, m.autocast);
    // Not scoped: gradient-checkpointed layers recompute in backward() with the decoder's state of then.
    m.policy.state.training = grad;
    pol = row_logprobs(m, m.policy, rows, p_rows).sum;
  }
  const at::Tensor refl = ref_logprobs(m, rows, p_rows);  // refl: [B·k]
  const Placement p = placement(rows);
  // Rewards and validity from the records (all K_i responses, forwarded or not), filled flat then viewed.
  std::vector<double> reward(static_cast<size_t>(B * K), 0.0);
  std::vector<int64_t> sizes;  // sizes: [B] responses of each prompt
  for (int64_t i = 0; i < B; ++i) {
    const auto& r = rewards[static_cast<size_t>(i)];
    std::copy(r.begin(), r.end(), reward.begin() + i * K);
    sizes.push_back(static_cast<int64_t>(r.size()));
  }
  const at::Tensor valid = at::arange(K, at::kLong).unsqueeze(0) < at::tensor(sizes, at::kLong).unsqueeze(1);  // [B, K]
  const at::Tensor counts = rows.response_mask.sum(1).to(at::kDouble);                 // counts: [B·k] response tokens
  const at::Tensor length = place_rows(p, counts.clamp_min(1.0), B, K, 1.0);            // length: [B, K] ≥ 1
  const at::Tensor forwarded = place_rows(p, at::ones({counts.size(0)}, at::kBool), B, K);  // [B, K] bool, CPU
  const auto fopt = at::TensorOptions().dtype(at::kFloat).device(m.device);
  return {place_rows(p, pol, B, K),  place_rows(p, refl, B, K),
          length.to(fopt),           at::tensor(reward, at::kDouble).view({B, K}).to(fopt),
          valid.to(m.device),        forwarded};
}

// A chunk's [B_c, K_c] batch widened to K slots with the placeholders forward_preferences puts at unforwarded
// slots (log-probs 0, length 1, reward 0, invalid, not forwarded), without gradients.
prefs::PrefBatch widen(const prefs::PrefBatch& b, int64_t K) {
  const int64_t extra = K - b.policy_logp.size(1);
  auto pad = [&](const at::Tensor& t, double v) { return at::constant_pad_nd(t.detach(), {0, extra}, v); };
  return {pad(b.policy_logp, 0), pad(b.ref_logp, 0), pad(b.length, 1), pad(b.reward, 0), pad(b.valid, 0),
          pad(b.forwarded, 0)};
}

prefs::PrefBatch cat(const std::vector<prefs::PrefBatch>& parts) {
  auto field = [&](at::Tensor prefs::PrefBatch::*f) {
    std::vector<at::Tensor> v;
    for (const auto& p : parts) v.push_back(p.*f);
    return at::cat(v);
  };
  return {field(&prefs::PrefBatch::policy_logp), field(&prefs::PrefBatch::ref_logp), field(&prefs::PrefBatch::length),
          field(&prefs::PrefBatch::reward),      field(&prefs::PrefBatch::valid),    field(&prefs::PrefBatch::forwarded)};
}

// Whether the policy and reference log-probs are all finite (a diverged model makes them NaN or ±inf).
bool finite_logps(const prefs::PrefBatch& b) {
  return at::isfinite(at::stack({b.policy_logp.detach(), b.ref_logp})).all().item<bool>();
}

// The loss and metrics of a micro-batch's [B, K] log-probs. Non-finite log-probs make a non-finite step,
// skipped by the guarded update; the loss core would reject them as bad input.
void preference_outcome(MicroStep& s, const prefs::PrefBatch& batch, const std::vector<prefs::Selection>& sels,
                        const prefs::LossConfig& lc) {
  if (!finite_logps(batch)) {
    s.loss = at::full({}, NAN, batch.policy_logp.options());
    return;
  }
  const auto res = prefs::preference_loss(batch, lc, prefs::stack_selections(sels));
  s.loss = res.loss;
  s.no_preference = res.no_preference;
  s.weight = static_cast<double>(s.rows.prompts - res.no_preference);
  s.accuracy = prefs::mean_over_preferences(res, res.margins.accuracy);
  s.rm_dpo = prefs::mean_over_preferences(res, res.margins.rm_dpo);
  s.rm_rdpo = prefs::mean_over_preferences(res, res.margins.rm_rdpo);
  s.chosen = prefs::mean_over_preferences(res, res.margins.chosen_reward);
  s.rejected = prefs::mean_over_preferences(res, res.margins.rejected_reward);
}

template <typename T>
std::vector<T> part(const std::vector<T>& v, int64_t i0, int64_t i1) {
  return std::vector<T>(v.begin() + i0, v.begin() + i1);
}

// train.max_tokens_per_micro_batch: forward and backward chunk by chunk (each chunk's loss weighted by its
// share w_c / W of the prompts with a preference), then the loss and metrics of the whole micro-batch from
// the chunks' detached log-probs — the numbers the unchunked step reports.
void chunked_preferences(const StepModels& m, MicroStep& s, const std::vector<std::vector<double>>& rewards,
                         const std::vector<prefs::Selection>& sels, bool grad, const prefs::LossConfig& lc) {
  const double W = static_cast<double>(prefs::stack_selections(sels).has_pref.sum().item<int64_t>());
  const double scale = grad ? m.backward_scale(W) : 0.0;
  int64_t K = 0;
  for (const auto& r : rewards) K = std::max<int64_t>(K, static_cast<int64_t>(r.size()));
  std::vector<prefs::PrefBatch> parts;
  const auto chunks = token_chunks(s.rows, m.max_tokens, m.layout);
  for (const auto& [i0, i1] : chunks) {
    const prefs::PrefBatch b = forward_preferences(m, data::slice_prompts(s.rows, i0, i1), part(rewards, i0, i1), grad);
    if (grad && scale != 0.0 && finite_logps(b)) {
      const auto res = prefs::preference_loss(b, lc, prefs::stack_selections(part(sels, i0, i1)));
      const double w = static_cast<double>(i1 - i0 - res.no_preference);
      if (w > 0) (res.loss * (w / W * scale)).backward();
    }
    parts.push_back(widen(b, K));
  }
  s.forwards = static_cast<int64_t>(chunks.size());
  preference_outcome(s, cat(parts), sels, lc);  // no gradients: the backward is done
}

// A reward model's score of every row [B·k] (fp32), in one forward.
at::Tensor score_rows(const StepModels& m, const data::Batch& b) {
  return model::sequence_scores(m.policy, b.ids.to(m.device), b.mask.to(m.device), b.response_mask.to(m.device), m.layout)
      .select(1, 0)
      .to(at::kFloat);
}

using RmLoss = std::function<at::Tensor(const at::Tensor& ranked, const prefs::Selection& sel)>;

// Reward model, train.max_tokens_per_micro_batch: scores chunk by chunk, each chunk's loss (a mean over its w_c
// prompts with a preference) backpropagated at once with weight w_c / W; the detached scores [B·k] come back.
at::Tensor chunked_scores(const StepModels& m, MicroStep& s, const std::vector<prefs::Selection>& sels, int64_t K,
                          bool grad, const RmLoss& loss_of) {
  const double W = static_cast<double>(prefs::stack_selections(sels).has_pref.sum().item<int64_t>());
  const double scale = grad ? m.backward_scale(W) : 0.0;
  std::vector<at::Tensor> parts;
  const auto chunks = token_chunks(s.rows, m.max_tokens, m.layout);
  for (const auto& [i0, i1] : chunks) {
    const data::Batch sub = data::slice_prompts(s.rows, i0, i1);
    const at::Tensor rows = score_rows(m, sub);  // rows: [n·k]
    const prefs::Selection sel = prefs::stack_selections(part(sels, i0, i1));
    const double w = static_cast<double>(sel.has_pref.sum().item<int64_t>());
    if (grad && scale != 0.0 && w > 0 && at::isfinite(rows).all().item<bool>()) {
      const at::Tensor ranked = place_rows(placement(sub), rows, i1 - i0, K).gather(1, sel.order.to(m.device));
      (loss_of(ranked, sel) * (w / W * scale)).backward();
    }
    parts.push_back(rows.detach());
  }
  s.forwards = static_cast<int64_t>(chunks.size());
  return at::cat(parts);
}

}  // namespace

std::vector<std::pair<int64_t, int64_t>> token_chunks(const data::Batch& b, int64_t budget, model::Layout layout) {
  if (budget <= 0 || b.prompts == 0) return {{0, b.prompts}};
  const at::Tensor len = b.mask.sum(1).view({b.prompts, b.k}).contiguous();            // len: [B, k] tokens per row
  const at::Tensor resp = b.response_mask.sum(1).view({b.prompts, b.k}).contiguous();  // resp: [B, k] response tokens
  const auto L = len.accessor<int64_t, 2>(), R = resp.accessor<int64_t, 2>();
  std::vector<std::pair<int64_t, int64_t>> out;
  int64_t start = 0, tokens = 0, longest = 0;  // the open chunk: packed tokens, longest row
  for (int64_t i = 0; i < b.prompts; ++i) {
    int64_t group = L[i][0] - R[i][0], group_longest = 0;  // the prompt once, then every response
    for (int64_t j = 0; j < b.k; ++j) group += R[i][j], group_longest = std::max(group_longest, L[i][j]);
    const int64_t cost = layout == model::Layout::packed ? tokens + group
                                                         : (i - start + 1) * b.k * std::max(longest, group_longest);
    if (i > start && cost > budget) out.emplace_back(start, i), start = i, tokens = 0, longest = 0;
    tokens += group, longest = std::max(longest, group_longest);
  }
  out.emplace_back(start, b.prompts);
  return out;
}

at::Tensor ref_logprobs(const StepModels& m, const data::Batch& b, const model::PackedRows* packed) {
  if (m.cache) {
    std::vector<double> v;  // v: [B·k]
    v.reserve(static_cast<size_t>(b.prompts * b.k));
    for (int64_t i = 0; i < b.prompts; ++i)
      for (int64_t j = 0; j < b.k; ++j) {
        const int64_t slot = b.response_index[static_cast<size_t>(i)][static_cast<size_t>(j)];
        v.push_back(slot < 0 ? 0.0 : m.cache->at(b.lines[static_cast<size_t>(i)], slot));
      }
    return at::tensor(v, at::kDouble).to(m.device, at::kFloat);
  }
  c10::AutoGradMode no_grad(false);
  model::AutocastGuard cast(m.device, m.autocast);
  std::optional<model::PackedRows> own;
  if (!packed && (own = pack(m, b))) packed = &*own;
  if (m.ref) return row_logprobs(m, *m.ref, b, packed).sum;
  model::StateGuard keep(m.policy);  // LoRA: the base model (adapters off, no dropout) is the reference
  m.policy.state.lora_enabled = false;
  m.policy.state.training = false;
  return row_logprobs(m, m.policy, b, packed).sum;
}

at::Tensor prompt_draws(uint64_t draw_seed, int64_t line) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(draw_seed, SeedPurpose::slot_draws,
                                                                           static_cast<uint64_t>(line)));
  return prefs::draw_uniforms(1, gen);  // [1, 2]
}

std::optional<MicroStep> preference_step(const StepModels& m, data::PreferenceLoader& ld, bool grad,
                                         uint64_t draw_seed, const prefs::LossConfig& lc) {
  std::vector<prefs::Selection> sels;
  std::vector<std::vector<double>> rewards;  // [B][K_i] float64, as annotated
  auto select = [&](const data::PreferenceRecord& r) {
    at::Tensor u = prompt_draws(draw_seed, r.line);  // [1, 2], drawn for every prompt whatever the method
    rewards.push_back(data::rewards_or_rank(r));
    if (r.responses.size() == 1)
      throw InputError("line " + std::to_string(r.line) + ": a preference record needs at least 2 responses");
    sels.push_back(select_record(r, lc, u));
    return prefs::read_slots(sels.back(), 0);
  };
  auto s = next_rows(ld, select);
  if (!s || !begin_rows(m, *s, grad)) return s;
  if (m.chunked()) chunked_preferences(m, *s, rewards, sels, grad, lc);
  else preference_outcome(*s, forward_preferences(m, s->rows, rewards, grad), sels, lc);
  return s;
}

std::optional<MicroStep> sft_step(const StepModels& m, data::PreferenceLoader& ld, bool grad) {
  auto s = next_rows(ld, select_best);
  if (!s || !begin_rows(m, *s, grad)) return s;
  c10::AutoGradMode mode(grad);
  model::AutocastGuard cast(m.device, m.autocast);
  m.policy.state.training = grad;  // not scoped: see forward_preferences
  if (!m.chunked()) {
    const auto packed = pack(m, s->rows);
    const auto lp = row_logprobs(m, m.policy, s->rows, packed ? &*packed : nullptr);  // sum, count: [B]
    s->loss = -lp.sum.sum() / lp.count.sum().clamp_min(1).to(lp.sum.scalar_type());
    s->weight = lp.count.sum().item<double>();
    return s;
  }
  // Chunked: the NLL summed chunk by chunk over W, the micro-batch's predicted response tokens (every response
  // token but a row's first position: what the log-probs count).
  const double W = s->rows.response_mask.slice(1, 1).sum().item<double>();
  const double scale = grad ? m.backward_scale(W) : 0.0;
  at::Tensor nll = at::zeros({}, at::kDouble);
  double count = 0;
  const auto chunks = token_chunks(s->rows, m.max_tokens, m.layout);
  for (const auto& [i0, i1] : chunks) {
    const data::Batch sub = data::slice_prompts(s->rows, i0, i1);
    const auto packed = pack(m, sub);
    const auto lp = row_logprobs(m, m.policy, sub, packed ? &*packed : nullptr);  // sum, count: [n]
    const at::Tensor part = -lp.sum.sum();
    if (grad && scale != 0.0 && W > 0 && at::isfinite(part).item<bool>()) (part * (scale / W)).backward();
    nll = nll + part.detach().cpu().to(at::kDouble);
    count += lp.count.sum().item<double>();
  }
  s->loss = (nll / std::max(count, 1.0)).to(at::kFloat);
  s->weight = count;
  s->forwards = static_cast<int64_t>(chunks.size());
  if (count != W) throw InternalError("sft_step: " + std::to_string(count) + " tokens scored, " + std::to_string(W) + " expected");
  return s;
}

std::optional<MicroStep> reward_step(const StepModels& m, data::PreferenceLoader& ld, bool grad,
                                     const prefs::LossConfig& loss, double margin) {
  // BT's best/worst groups or the whole list for PL, with the preference losses' tie rule: one selection
  // for the forward and the loss.
  prefs::LossConfig lc;
  lc.preference = loss.preference == prefs::Preference::pl ? prefs::Preference::pl : prefs::Preference::bt;
  lc.pair_rule = prefs::PairRule::max_min;
  lc.ties = loss.ties;
  std::vector<prefs::Selection> sels;
  int64_t K = 0;
  auto select = [&](const data::PreferenceRecord& r) {
    sels.push_back(select_record(r, lc, at::Tensor()));
    K = std::max<int64_t>(K, static_cast<int64_t>(r.responses.size()));
    return prefs::read_slots(sels.back(), 0);
  };
  auto s = next_rows(ld, select);
  if (!s || !begin_rows(m, *s, grad)) return s;
  c10::AutoGradMode mode(grad);
  model::AutocastGuard cast(m.device, m.autocast);
  m.policy.state.training = grad;  // not scoped: see forward_preferences
  const data::Batch& b = s->rows;
  const auto loss_of = [&](const at::Tensor& ranked, const prefs::Selection& sel) {
    return lc.preference == prefs::Preference::pl ? rm_loss_pl(ranked, sel) : rm_loss_bt(ranked, sel, margin);
  };
  const at::Tensor rows = m.chunked() ? chunked_scores(m, *s, sels, K, grad, loss_of) : score_rows(m, b);  // [B·k]
  const at::Tensor scores = rows.view({b.prompts, b.k});  // scores: [B, k] row order
  const prefs::Selection sel = prefs::stack_selections(sels);
  const at::Tensor ranked = place_rows(placement(b), rows, b.prompts, K).gather(1, sel.order.to(m.device));  // [B, K] rank order
  s->loss = loss_of(ranked, sel);
  s->no_preference = sel.has_pref.numel() - sel.has_pref.sum().item<int64_t>();
  s->weight = static_cast<double>(sel.has_pref.numel() - s->no_preference);
  s->accuracy = pairwise_accuracy(scores, b.rewards);
  if (lc.preference == prefs::Preference::bt) {  // the reported pair's scores, over prompts with a preference
    const auto score_at = [&](const at::Tensor& pos) { return prefs::at_rank(ranked, pos.to(m.device)); };  // [B]
    s->chosen = prefs::mean_over_preferences(score_at(sel.chosen), sel.has_pref).item<double>();
    s->rejected = prefs::mean_over_preferences(score_at(sel.rejected), sel.has_pref).item<double>();
  }
  return s;
}

}  // namespace hps::train

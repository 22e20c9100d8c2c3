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

}  // namespace

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
  if (!s || s->rows.prompts == 0) return s;
  const prefs::PrefBatch batch = forward_preferences(m, s->rows, rewards, grad);
  // Non-finite log-probs (a diverged model) make a non-finite step, skipped by the guarded update; the loss
  // core would reject them as bad input.
  if (!at::isfinite(at::stack({batch.policy_logp.detach(), batch.ref_logp})).all().item<bool>()) {
    s->loss = at::full({}, NAN, batch.policy_logp.options());
    return s;
  }
  const auto res = prefs::preference_loss(batch, lc, prefs::stack_selections(sels));
  s->loss = res.loss;
  s->no_preference = res.no_preference;
  s->weight = static_cast<double>(s->rows.prompts - res.no_preference);
  s->accuracy = prefs::mean_over_preferences(res, res.margins.accuracy);
  s->rm_dpo = prefs::mean_over_preferences(res, res.margins.rm_dpo);
  s->rm_rdpo = prefs::mean_over_preferences(res, res.margins.rm_rdpo);
  s->chosen = prefs::mean_over_preferences(res, res.margins.chosen_reward);
  s->rejected = prefs::mean_over_preferences(res, res.margins.rejected_reward);
  return s;
}

std::optional<MicroStep> sft_step(const StepModels& m, data::PreferenceLoader& ld, bool grad) {
  auto s = next_rows(ld, select_best);
  if (!s || s->rows.prompts == 0) return s;
  c10::AutoGradMode mode(grad);
  model::AutocastGuard cast(m.device, m.autocast);
  m.policy.state.training = grad;  // not scoped: see forward_preferences
  const auto packed = pack(m, s->rows);
  const auto lp = row_logprobs(m, m.policy, s->rows, packed ? &*packed : nullptr);  // sum, count: [B]
  s->loss = -lp.sum.sum() / lp.count.sum().clamp_min(1).to(lp.sum.scalar_type());
  s->weight = lp.count.sum().item<double>();
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
  if (!s || s->rows.prompts == 0) return s;
  c10::AutoGradMode mode(grad);
  model::AutocastGuard cast(m.device, m.autocast);
  m.policy.state.training = grad;  // not scoped: see forward_preferences
  const data::Batch& b = s->rows;
  const at::Tensor rows = model::sequence_scores(m.policy, b.ids.to(m.device), b.mask.to(m.device),
                                                 b.response_mask.to(m.device), m.layout)
                              .select(1, 0)
                              .to(at::kFloat);  // [B·k]
  const at::Tensor scores = rows.view({b.prompts, b.k});  // scores: [B, k] row order
  const prefs::Selection sel = prefs::stack_selections(sels);
  const at::Tensor ranked = place_rows(placement(b), rows, b.prompts, K).gather(1, sel.order.to(m.device));  // [B, K] rank order
  s->loss = lc.preference == prefs::Preference::pl ? rm_loss_pl(ranked, sel) : rm_loss_bt(ranked, sel, margin);
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

// One selection per step: which responses each prompt's loss reads and with what weight, decided once from
// the annotated rewards (float64) and the step's draws. The trainer forwards exactly `read`; the loss uses
// the same Selection and asserts it reads nothing else (issue: a second ranking in float32, or a draw near a
// CDF boundary, used to make the loss read a response that was never forwarded).
//
//   Selection s = select_slots(reward, valid, config, draws);   // reward [B, K] float64 (CPU)
//   ... forward the slots where s.read is set ...
//   LossResult r = preference_loss(batch, config, s);
//
// Ranking: responses sorted by reward, descending, ties by slot (lower first). Tie groups ("tiers") under
// ties = exclude: equal rewards share a tier; under by_slot every rank position is its own tier (the
// earlier behaviour). Every preference rule is written in tiers: a negative is a response of a strictly
// worse tier, and a preferred response's weight is shared uniformly by its tier. Equations: docs/losses.md.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "prefs/loss_config.hpp"

namespace hps::prefs {

// One preference term: preferred responses (anchors) against dispreferred ones. Rank order, float64.
struct Term {
  at::Tensor anchor;    // [B, K] weight of each preferred response: uniform over one tier (rows sum to 1),
                        // or a one-hot for BT's `random` pair; all 0 where the term has no negative
  at::Tensor negative;  // [B, K] weight of each dispreferred response: q of eq. (9) (hps_full), one-hot
                        // (a draw), uniform over a tier (BT max_min / max_max); rows sum to 1 or are all 0
  at::Tensor log_n;     // [B] log N of eq. (8) (HPS with n_factor = n; N = the term's negatives), else 0
};

struct Selection {
  at::Tensor order;     // [B, K] int64: original slot at rank position j (j = 0 is y_τ(1))
  at::Tensor valid;     // [B, K] bool: rank position j holds a response (a prefix of each row)
  at::Tensor count;     // [B] int64: n, responses per prompt
  at::Tensor tier;      // [B, K] int64: tie group of rank position j (0 = best); K at invalid positions
  at::Tensor has_pref;  // [B] bool: at least two tiers — the prompt carries a preference
  std::vector<Term> terms;  // BT, HPS: one; Appendix E: two (L1, L2); PL: none (it reads the whole ranking)
  at::Tensor chosen;    // [B] int64 rank position of the reported preferred response
  at::Tensor rejected;  // [B] int64 rank position of the reported dispreferred one (0 without preference)
  at::Tensor rejected2; // [B] Appendix E: the reported negative of L2 (0 when L2 has none)
  at::Tensor read;      // [B, K] bool, SLOT order: the responses whose log-probs the loss reads
  at::Tensor draws;     // [B, 2] float64 as given (undefined for deterministic cells)
};

// Validates reward [B, K] (finite at valid slots) and valid [B, K] bool (undefined = all valid), n ≥
// min_responses per prompt (2; 3 for Appendix E), and the draws of stochastic cells ([B, 2] in [0, 1)).
// Runs on the CPU in float64 whatever the inputs' device and dtype; the result lives on the CPU.
Selection select_slots(const at::Tensor& reward, const at::Tensor& valid, const LossConfig& c,
                       const at::Tensor& draws);

// Prompts selected one at a time (each [1, K_b]) as one batch [B, max K_b]; padding positions are invalid.
Selection stack_selections(const std::vector<Selection>& rows);

// The slots of prompt b the loss reads, ascending.
std::vector<int64_t> read_slots(const Selection& s, int64_t b);

}  // namespace hps::prefs

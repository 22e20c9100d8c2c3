// The embedded default job (for now): fit free per-response parameters with every preference model
// and parameterization on a synthetic ranked set, then compare the implicit-reward margin between the
// best response and the hardest negative — a first look at Theorem 3 (HPS maximizes that margin).
//
// Setting: P prompts, K candidate responses each, with exact rewards r*: one best (r* = 1), `hard`
// near-misses (r* ∈ [0.6, 0.9]) and the rest clearly bad (r* ∈ [−2, −1]). The policy of a prompt is a
// categorical distribution over its K candidates, log π_θ = log_softmax(θ), θ ∈ R^{P×K} free, starting
// at the reference π_ref = uniform. Each method trains θ with Adam for the same number of steps.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "prefs/gamma_schedule.hpp"
#include "prefs/loss_config.hpp"

namespace hps::demo {

struct DemoConfig {
  int64_t seed = 0;
  int64_t prompts = 64;
  int64_t responses = 8;  // K
  int64_t hard = 2;       // hard negatives per prompt
  int64_t steps = 300;
  double lr = 0.05;
  prefs::LossConfig loss;  // objective / preference overwritten per grid cell
  prefs::GammaSchedule gamma;
};

struct DemoRow {
  std::string objective;
  std::string preference;
  double margin_hardest = 0;  // mean over prompts of r_θ(y_τ(1)) − max_{j≥2} r_θ(y_τ(j)), r_θ = β log π_θ/π_ref
  double margin_mean = 0;     // mean of r_θ(y_τ(1)) − mean_{j≥2} r_θ(y_τ(j))
  double p_best = 0;          // mean π_θ(y_τ(1))
  double p_hard = 0;          // mean total π_θ mass on the hard negatives
  int64_t forwarded = 0;      // responses per prompt a step needs a forward pass for
  double seconds = 0;
};

// Reads [demo], [loss] and [gamma] tables (see examples/demo.toml).
DemoConfig read_demo_config(const Config& cfg);

std::vector<DemoRow> run_loss_demo(const DemoConfig& config, const std::vector<prefs::Objective>& objectives,
                                   const std::vector<prefs::Preference>& preferences);

void print_demo_table(const std::vector<DemoRow>& rows, std::ostream& os);

}  // namespace hps::demo

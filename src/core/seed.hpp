// One user seed, many independent random streams: every stream hps draws from is derive_seed(base, purpose
// [, index]) of the run's seed, so no two purposes share (or shift into) each other's numbers — the old
// ad-hoc `seed + 7`, `seed ^ 0x5eed`, `seed * 1000003 + batch` could collide across runs whose seeds differ
// by the offset.
#pragma once

#include <cstdint>

namespace hps {

enum class SeedPurpose : uint64_t {
  torch_global = 1,   // at::manual_seed: LoRA dropout and anything else on torch's default generator
  data_order,         // the training loader's shuffle (per epoch)
  eval_split,         // the held-out share of a training set
  slot_draws,         // sampled HPS negatives / sampled PL rankings during training
  eval_draws,         // the same draws for every held-out evaluation of a run
  lora_init,          // LoRA A matrices
  score_head,         // a reward model's new score head
  generation_sample,  // one sample's random stream (indices: the prompt's stream id, the sample, the step)
  eval_generation,    // the pipeline's samples on the test prompts (vs the training prompts' samples)
  task_model,         // a synthetic task's base model
  task_records,       // a synthetic task's records (index: which file)
  demo_draws,         // hps loss-demo's sampled draws
};

// SplitMix64 (Steele, Lea & Flood 2014) over the base, the purpose and the index: well-mixed 64-bit seeds
// for nearby inputs.
constexpr uint64_t derive_seed(uint64_t base, SeedPurpose purpose, uint64_t index = 0) {
  auto mix = [](uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(base) ^ static_cast<uint64_t>(purpose)) ^ index);
}

}  // namespace hps

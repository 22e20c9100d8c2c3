// Sharding a file job (hps generate, hps score) over a data-parallel group: each rank takes a contiguous run of
// whole units — generation batches, scoring chunks — so every unit is computed exactly as one process computes
// it (same prompts together, same seeds), writes its part resumably, and rank 0 joins the parts in rank order.
// The joined file is byte-identical to a single-process run's.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "dist/world.hpp"

namespace hps::generate {

struct Range {
  int64_t begin = 0, end = 0;  // [begin, end) of the input's records
};

// Rank `rank` of `ranks`: units [r·U/R, (r+1)·U/R) of U = ⌈total / unit⌉, as records.
Range shard_range(int64_t total, int64_t unit, int64_t rank, int64_t ranks);

// OUT.part-<rank>-of-<ranks>: where a rank writes its records.
std::string part_path(const std::string& out, int64_t rank, int64_t ranks);

// Once every rank has finished its part: when every part is `complete`, rank 0 writes their concatenation to
// `out` (atomically, so `out` may be the input) and removes them; otherwise the parts stay for a rerun to
// continue. Returns whether `out` was written (the same answer on every rank).
bool join_parts(const std::string& out, bool complete, const dist::World& w, std::ostream& log);

}  // namespace hps::generate

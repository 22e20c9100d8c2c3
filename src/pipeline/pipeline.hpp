// `hps pipeline CONFIG.toml`: the paper's stages in order — SFT → generate K responses per prompt → reward
// model (given, or trained with train-rm) → annotate → train each requested preference method → generate on
// the test prompts, score and evaluate every model → one report. Every stage writes into RUN/<stage>/ and
// marks itself DONE; a rerun skips finished stages (and resumes the one that was interrupted).
#pragma once

#include <ostream>

#include "core/config.hpp"

namespace hps::pipeline {

// Runs (or resumes) the pipeline described by `cfg` ([run] [task] [policy] [sft] [generate] [reward] [train]
// [eval]). Stage lines and the report go to `out`; every stage's progress to RUN/log.txt (and to `out` too
// when `verbose`). With run.seeds = N > 1 the whole pipeline runs per seed in RUN/seed-S and RUN/report
// holds mean ± sd over seeds.
void run_pipeline(const Config& cfg, std::ostream& out, bool verbose = false);

}  // namespace hps::pipeline

// `hps pipeline CONFIG.toml`: the paper's stages in order — SFT → generate K responses per prompt → reward
// model (given, or trained with train-rm) → annotate → train each requested preference method → generate on
// the test prompts, score and evaluate every model → one report. Every stage writes into RUN/<stage>/ and
// marks itself DONE with what it ran with; a rerun skips finished stages whose settings and inputs are
// unchanged, and resumes the one that was interrupted from its checkpoints or partial files.
#pragma once

#include <ostream>

#include "core/config.hpp"
#include "pipeline/task.hpp"

namespace hps::pipeline {

// Runs (or resumes) the pipeline described by `cfg` (pipeline_config.hpp: [run] [task] [policy] [data] [model]
// [sft] [generate] [reward] [train] [loss] [gamma] [lora] [rm] [methods] [eval]); `tasks` are the [task] kinds
// the caller offers. Stage lines and the report go to `out`; every stage's progress to RUN/log.txt (and to
// `out` too when `verbose`). A stage reruns when its settings or inputs changed since it finished, and so does
// everything downstream of it (stage.hpp). With run.seeds = N > 1 the whole pipeline runs per seed in
// RUN/seed-S and RUN/report holds mean ± sd over seeds.
void run_pipeline(const Config& cfg, const TaskKinds& tasks, std::ostream& out, bool verbose = false);

}  // namespace hps::pipeline

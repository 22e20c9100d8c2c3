// The [task] kinds src/demo offers `hps pipeline` and `hps demo`: the pipeline runs whatever task it is
// handed and knows none of them (pipeline/task.hpp); the command line hands it these.
#pragma once

#include "pipeline/task.hpp"

namespace hps::demo {

// "synthetic": the embedded task of synth_task.hpp — its files from the seed, its exact reward r* as oracle.
pipeline::TaskKinds task_kinds();

}  // namespace hps::demo

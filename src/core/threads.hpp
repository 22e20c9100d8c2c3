// CPU threads that survive a shared machine (issue 15). LibTorch's default is one OpenMP thread per CPU the
// affinity mask allows, each spinning while it waits: on a machine shared with another busy process the
// spinning threads starve the working one (10 steps of `hps train` took 44 s instead of 11 s on a 2-core
// machine next to one busy process). hps uses as many intra-op threads as CPUs it may actually run on — the
// affinity mask capped by the cgroup CPU quota — unless told otherwise, and OpenMP threads that sleep
// instead of spinning.
#pragma once

#include <optional>
#include <string>

namespace hps {

// CPUs this process may run on: the affinity mask's count, capped by the cgroup CPU quota (v2 cpu.max, v1
// cpu.cfs_quota_us / cpu.cfs_period_us, rounded up); at least 1.
int usable_cpus();

// The intra-op thread count: `requested` (--threads) if given, else HPS_THREADS, else OMP_NUM_THREADS, else
// usable_cpus() shared among torchrun's LOCAL_WORLD_SIZE processes. A value that is not a positive integer
// is a ConfigError naming where it came from.
int thread_count(std::optional<int> requested);

// Must run first in main, before any OpenMP region: OpenMP reads its wait policy once, when it is loaded, so
// when OMP_WAIT_POLICY is unset this sets it to PASSIVE and re-executes the program (returns only when it is
// already set, by the user or by the re-execution). Set OMP_WAIT_POLICY=ACTIVE to keep spinning threads.
void ensure_passive_openmp(char** argv);

}  // namespace hps

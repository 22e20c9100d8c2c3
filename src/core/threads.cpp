#include "core/threads.hpp"

#include <sched.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace hps {

namespace {

// The cgroup CPU quota in CPUs (quota / period), or 0 when there is none.
double cgroup_cpus() {
  std::ifstream v2("/sys/fs/cgroup/cpu.max");  // "max 100000" or "<quota> <period>"
  std::string quota;
  long long period = 0;
  if (v2 >> quota >> period) return quota == "max" || period <= 0 ? 0.0 : std::stod(quota) / static_cast<double>(period);
  std::ifstream q("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), p("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  long long qv = 0, pv = 0;
  if (q >> qv && p >> pv && qv > 0 && pv > 0) return static_cast<double>(qv) / static_cast<double>(pv);
  return 0.0;
}

int parse_threads(const std::string& text, const std::string& where) {
  size_t used = 0;
  int n = 0;
  try {
    n = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || n <= 0)
    throw ConfigError(where + ": thread count must be a positive integer, got '" + text + "'");
  return n;
}

}  // namespace

int usable_cpus() {
  int n = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  if (n <= 0) n = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  const double quota = cgroup_cpus();
  if (quota > 0) n = std::min(n, static_cast<int>(std::ceil(quota)));
  return std::max(n, 1);
}

int thread_count(std::optional<int> requested) {
  if (requested) return parse_threads(std::to_string(*requested), "--threads");
  for (const char* var : {"HPS_THREADS", "OMP_NUM_THREADS"})
    if (const char* env = std::getenv(var)) return parse_threads(env, var);
  // torchrun's processes on one machine share its CPUs.
  const char* local = std::getenv("LOCAL_WORLD_SIZE");
  const int procs = local ? parse_threads(local, "LOCAL_WORLD_SIZE") : 1;
  return std::max(1, usable_cpus() / procs);
}

void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then run on with OpenMP's default policy
}

}  // namespace hps

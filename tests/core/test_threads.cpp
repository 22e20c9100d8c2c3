// core/threads: where the intra-op thread count comes from (--threads > HPS_THREADS > OMP_NUM_THREADS > the
// CPUs this process may use, shared among torchrun's local processes), and clear errors for bad values.
#include <gtest/gtest.h>
#include <sched.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "core/threads.hpp"

namespace hps {
namespace {

// Sets (or, with nullopt, unsets) environment variables for one test and restores them after.
class EnvScope {
 public:
  EnvScope(std::initializer_list<std::pair<const char*, std::optional<std::string>>> vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name);
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
      if (value) setenv(name, value->c_str(), 1);
      else unsetenv(name);
    }
  }
  ~EnvScope() {
    for (const auto& [name, value] : saved_) {
      if (value) setenv(name.c_str(), value->c_str(), 1);
      else unsetenv(name.c_str());
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

TEST(Threads, PrecedenceIsFlagThenHpsThreadsThenOmpNumThreads) {
  EnvScope env{{"HPS_THREADS", "3"}, {"OMP_NUM_THREADS", "5"}, {"LOCAL_WORLD_SIZE", std::nullopt}};
  EXPECT_EQ(thread_count(7), 7);
  EXPECT_EQ(thread_count(std::nullopt), 3);
  unsetenv("HPS_THREADS");
  EXPECT_EQ(thread_count(std::nullopt), 5);
  unsetenv("OMP_NUM_THREADS");
  EXPECT_EQ(thread_count(std::nullopt), usable_cpus());
}

TEST(Threads, TorchrunProcessesShareTheMachinesCpus) {
  EnvScope env{{"HPS_THREADS", std::nullopt}, {"OMP_NUM_THREADS", std::nullopt}, {"LOCAL_WORLD_SIZE", "1000000"}};
  EXPECT_EQ(thread_count(std::nullopt), 1);  // never 0
  setenv("LOCAL_WORLD_SIZE", "1", 1);
  EXPECT_EQ(thread_count(std::nullopt), usable_cpus());
}

TEST(Threads, BadCountsNameTheirSource) {
  EnvScope env{{"HPS_THREADS", "two"}, {"OMP_NUM_THREADS", std::nullopt}};
  auto message = [](std::optional<int> requested) {
    try {
      thread_count(requested);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(std::nullopt).find("HPS_THREADS: thread count must be a positive integer, got 'two'"), std::string::npos)
      << message(std::nullopt);
  EXPECT_NE(message(0).find("--threads"), std::string::npos) << message(0);
  for (const char* bad : {"0", "-2", "4x", ""}) {
    setenv("HPS_THREADS", bad, 1);
    EXPECT_THROW(thread_count(std::nullopt), ConfigError) << bad;
  }
  unsetenv("HPS_THREADS");
  setenv("LOCAL_WORLD_SIZE", "0", 1);
  EXPECT_THROW(thread_count(std::nullopt), ConfigError);
  unsetenv("LOCAL_WORLD_SIZE");
}

TEST(Threads, UsableCpusFollowTheAffinityMask) {
  cpu_set_t all;
  ASSERT_EQ(sched_getaffinity(0, sizeof all, &all), 0);
  EXPECT_GE(usable_cpus(), 1);
  EXPECT_LE(usable_cpus(), CPU_COUNT(&all));
  int first = 0;
  while (!CPU_ISSET(first, &all)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  const int pinned = usable_cpus();
  ASSERT_EQ(sched_setaffinity(0, sizeof all, &all), 0);
  EXPECT_EQ(pinned, 1);
}

}  // namespace
}  // namespace hps

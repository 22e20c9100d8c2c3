// Helpers shared by every test file.
#pragma once

#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <optional>
#include <string>

#include "io/atomic_file.hpp"

namespace hps::test {

// The what() of the E thrown by f, or "<no E thrown>" — for asserting on error messages.
template <typename E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no exception of the expected type>";
}

// The committed fixture folder (ctest sets HPS_FIXTURES_DIR; by hand run from the repo root).
inline std::string fixtures_dir() {
  const char* dir = std::getenv("HPS_FIXTURES_DIR");
  return dir ? dir : "tests/fixtures";
}

// A file of the data folder next to the repository (`../shared`, e.g. "data/hh-rlhf-….jsonl.gz"). Not
// every checkout has it: locally a test that needs it skips; under CI=true (or 1) a missing file fails,
// so a CI job that lost the folder cannot pass by skipping. Use HPS_SHARED_FILE_OR_SKIP(path) in a test.
inline std::string shared_file(const std::string& relative) {
  return fixtures_dir() + "/../../../shared/" + relative;
}
enum class MissingShared { skip, fail };
// What a test does when its shared file is missing, given the value of $CI (nullptr when unset).
inline MissingShared on_missing_shared(const char* ci) {
  const std::string v = ci ? ci : "";
  return v == "true" || v == "1" ? MissingShared::fail : MissingShared::skip;
}

// A fresh empty folder under the system temp dir, removed when the object dies.
struct TempDir {
  std::string path;
  TempDir() {
    static int counter = 0;
    const char* tmp = std::getenv("TMPDIR");
    path = std::string(tmp ? tmp : "/tmp") + "/hps_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    io::remove_tree(path);
    io::make_dirs(path);
  }
  ~TempDir() { io::remove_tree(path); }
  std::string str(const std::string& child = "") const { return child.empty() ? path : path + "/" + child; }
};

// Sets an environment variable for the scope; restores (or unsets) it after.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(std::string n, const std::string& value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) old = v;
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() { old ? ::setenv(name.c_str(), old->c_str(), 1) : ::unsetenv(name.c_str()); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
};

}  // namespace hps::test

// Continues when `path` exists; otherwise skips the test, or fails it under CI=true (see on_missing_shared).
#define HPS_SHARED_FILE_OR_SKIP(path)                                                                  \
  do {                                                                                                 \
    const std::string hps_shared_path_ = (path);                                                       \
    if (!::hps::io::file_exists(hps_shared_path_)) {                                                   \
      if (::hps::test::on_missing_shared(std::getenv("CI")) == ::hps::test::MissingShared::fail)       \
        FAIL() << "no " << hps_shared_path_ << " (../shared absent) and CI=true: a CI run must have it"; \
      GTEST_SKIP() << "no " << hps_shared_path_ << " (../shared absent)";                              \
    }                                                                                                  \
  } while (0)

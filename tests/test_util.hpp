// Helpers shared by every test file.
#pragma once

#include <unistd.h>

#include <functional>
#include <string>

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

}  // namespace hps::test

#include <cstdlib>

#include "io/atomic_file.hpp"

namespace hps::test {

// The committed fixture folder (ctest sets HPS_FIXTURES_DIR; by hand run from the repo root).
inline std::string fixtures_dir() {
  const char* dir = std::getenv("HPS_FIXTURES_DIR");
  return dir ? dir : "tests/fixtures";
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

}  // namespace hps::test

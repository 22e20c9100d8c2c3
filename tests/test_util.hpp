// Helpers shared by every test file.
#pragma once

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

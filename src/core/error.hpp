// hps error hierarchy. Library code throws; only src/cli/ catches and prints.
//
// Every error carries a message that names what was wrong (file, line/offset, field, rule, expected vs
// actual, where those apply) plus a stack of context frames added on the way up ("while loading …").
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace hps {

enum class ErrorKind {
  input,     // bad data or tensors handed to hps (a file, a batch)
  config,    // bad configuration value or unknown key
  usage,     // bad command line
  numeric,   // non-finite values where finite ones are required
  internal,  // a broken invariant inside hps
};

const char* to_string(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message);

  ErrorKind kind() const { return kind_; }
  // The message without context frames.
  const std::string& message() const { return message_; }
  const std::vector<std::string>& context() const { return context_; }
  // Adds an outer frame ("while reading config demo.toml"); returns *this for rethrow.
  Error& add_context(std::string frame);

 private:
  void rebuild();
  ErrorKind kind_;
  std::string message_;
  std::vector<std::string> context_;
  std::string full_;
};

struct InputError : Error {
  explicit InputError(std::string message) : Error(ErrorKind::input, std::move(message)) {}
};
struct ConfigError : Error {
  explicit ConfigError(std::string message) : Error(ErrorKind::config, std::move(message)) {}
};
struct UsageError : Error {
  explicit UsageError(std::string message) : Error(ErrorKind::usage, std::move(message)) {}
};
struct NumericError : Error {
  explicit NumericError(std::string message) : Error(ErrorKind::numeric, std::move(message)) {}
};
struct InternalError : Error {
  explicit InternalError(std::string message) : Error(ErrorKind::internal, std::move(message)) {}
};

}  // namespace hps

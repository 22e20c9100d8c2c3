#include "core/error.hpp"

namespace hps {

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::input: return "input error";
    case ErrorKind::config: return "config error";
    case ErrorKind::usage: return "usage";
    case ErrorKind::numeric: return "numeric error";
    case ErrorKind::internal: return "internal error";
  }
  return "error";
}

Error::Error(ErrorKind kind, std::string message)
    : std::runtime_error(message), kind_(kind), message_(std::move(message)) {
  rebuild();
}

Error& Error::add_context(std::string frame) {
  context_.push_back(std::move(frame));
  rebuild();
  return *this;
}

void Error::rebuild() {
  full_ = message_;
  for (const auto& frame : context_) full_ += "\n  " + frame;
  static_cast<std::runtime_error&>(*this) = std::runtime_error(full_);
}

}  // namespace hps

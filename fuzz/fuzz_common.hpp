// What every fuzz target shares. The rule each target checks, beyond the sanitizers' own (ASan: memory errors
// and leaks; UBSan: undefined behaviour, which aborts): bad bytes may only ever produce one of hps's named
// errors (InputError, ConfigError, UsageError, NumericError). An InternalError (a broken invariant) or any
// other exception escaping a reader (nlohmann's type_error, std::out_of_range, bad_alloc, …) is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace hps::fuzz {

template <class Body>
int run_input(Body&& body) {
  try {
    body();
  } catch (const InternalError& e) {
    std::fprintf(stderr, "fuzz: internal error on this input: %s\n", e.what());
    std::abort();
  } catch (const Error&) {
    // the named error bad input deserves
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: an unnamed exception escaped: %s\n", e.what());
    std::abort();
  }
  return 0;
}

// A file holding `bytes`, named `name` inside this process's own temporary folder (the readers take paths).
inline std::string write_temp(const std::string& name, std::string_view bytes) {
  static const std::string dir = [] {
    std::string tmpl = (std::getenv("TMPDIR") ? std::string(std::getenv("TMPDIR")) : std::string("/tmp")) +
                       "/hps-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    return tmpl;
  }();
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits at the first `sep`: {before, after} (after is empty when there is none).
inline std::pair<std::string_view, std::string_view> split_once(std::string_view s, char sep) {
  const size_t at = s.find(sep);
  if (at == std::string_view::npos) return {s, {}};
  return {s.substr(0, at), s.substr(at + 1)};
}

}  // namespace hps::fuzz

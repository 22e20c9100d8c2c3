// Line-oriented JSON (.jsonl, and .jsonl.gz through zlib), streamed one record at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

namespace hps::io {

// Calls `on_record(line_number, value)` for each non-blank line (line numbers are 1-based). Bad JSON
// throws InputError "path:LINE: invalid JSON (...)"; a truncated or corrupt gzip stream throws naming the
// last complete line. Exceptions thrown by on_record get "path:LINE" added as context.
void for_each_jsonl(const std::string& path, const std::function<void(int64_t, const nlohmann::json&)>& on_record);

// The first non-blank record of a JSONL(.gz) file (nullopt for an empty file), e.g. to detect its format.
std::optional<nlohmann::json> first_jsonl_record(const std::string& path);

}  // namespace hps::io

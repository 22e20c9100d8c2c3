// Every JSON text hps reads (config.json, tokenizer.json, JSONL records, safetensors headers, metrics.jsonl,
// token ids on the command line) goes through parse_json: nlohmann parses any depth, but copying or printing a
// value recurses, so 100 000 nested brackets crashed the error paths. Deeper than kMaxJsonDepth is an
// InputError naming where (and the line and column), before anything recurses.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace hps::io {

inline constexpr int kMaxJsonDepth = 512;

// An extra parse callback (nlohmann's parser_callback_t): return false to discard the value.
using JsonEvent = std::function<bool(int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed)>;

// Parses `text`; errors (syntax, numbers out of range, nesting) are InputErrors "<where>: invalid JSON at
// line L, column C (…)" / "<where>: JSON nested deeper than …".
// `unique_keys`: a key repeated within one object is an error (nlohmann keeps the last one silently).
nlohmann::json parse_json(std::string_view text, const std::string& where, const JsonEvent& on_event = nullptr,
                          bool unique_keys = false);

// What an error message shows of a value: its JSON text when short, else the first `max_chars` characters,
// "…", the type and the full size ("[1, 2, 3, … (array of 100000 bytes)"). Never a full dump of a large value.
std::string json_excerpt(const nlohmann::json& value, size_t max_chars = 80);

}  // namespace hps::io

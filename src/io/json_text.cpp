#include "io/json_text.hpp"

#include <set>
#include <vector>

#include "core/error.hpp"

namespace hps::io {

namespace {

// " at line L, column C" of the 1-based byte offset `byte` in `text` (" at column C" for one line).
std::string position(std::string_view text, size_t byte) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i + 1 < byte && i < text.size(); ++i) {
    if (text[i] == '\n') ++line, col = 1;
    else ++col;
  }
  const bool one_line = text.find('\n') == std::string_view::npos;
  return (one_line ? " at column " : " at line " + std::to_string(line) + ", column ") + std::to_string(col);
}

struct TooDeep {};  // thrown out of the parser's callback; nothing of the partial value is copied or printed
struct DuplicateKey {
  std::string key;
};

}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& where, const JsonEvent& on_event,
                          bool unique_keys) {
  using Event = nlohmann::json::parse_event_t;
  int deepest = 0;
  std::vector<std::set<std::string>> keys;  // keys: the open objects' keys, innermost last
  auto guard = [&](int depth, Event event, nlohmann::json& parsed) {
    if (depth > kMaxJsonDepth) {
      deepest = depth;
      throw TooDeep{};
    }
    if (unique_keys) {
      if (event == Event::object_start) keys.emplace_back();
      if (event == Event::object_end && !keys.empty()) keys.pop_back();
      if (event == Event::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second)
        throw DuplicateKey{parsed.get<std::string>()};
    }
    return on_event ? on_event(depth, event, parsed) : true;
  };
  try {
    return nlohmann::json::parse(text, guard);
  } catch (const DuplicateKey& d) {
    throw InputError(where + ": key \"" + d.key.substr(0, 200) + "\" appears twice in one object (JSON keeps only the last)");
  } catch (const TooDeep&) {
    throw InputError(where + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels (" +
                     std::to_string(deepest) + " reached)");
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(where + ": invalid JSON" + position(text, e.byte) + " (" + e.what() + ")");
  } catch (const nlohmann::json::exception& e) {  // out_of_range: numbers like 1e999
    throw InputError(where + ": invalid JSON (" + e.what() + ")");
  }
}

std::string json_excerpt(const nlohmann::json& value, size_t max_chars) {
  // dump() is safe here: every parsed value is at most kMaxJsonDepth deep.
  const std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() <= max_chars) return text;
  size_t cut = max_chars;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
  return text.substr(0, cut) + "… (" + value.type_name() + " of " + std::to_string(text.size()) + " bytes)";
}

}  // namespace hps::io

// Line-oriented JSON (.jsonl, and .jsonl.gz through zlib), streamed one record at a time.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

namespace hps::io {

// Calls `on_record(line_number, value)` for each non-blank line (line numbers are 1-based). Bad JSON
// throws InputError "path:LINE: invalid JSON (...)"; a truncated or corrupt gzip stream throws naming the
// last complete line. Exceptions thrown by on_record get "path:LINE" added as context.
void for_each_jsonl(const std::string& path, const std::function<void(int64_t, const nlohmann::json&)>& on_record);

// The first non-blank record of a JSONL(.gz) file (nullopt for an empty file), e.g. to detect its format.
std::optional<nlohmann::json> first_jsonl_record(const std::string& path);

// An append-only JSONL output that survives a crash (the resume logic of `hps generate` and `hps score`).
// Opening it keeps the complete lines of an existing file and cuts a trailing partial line — what an
// interrupted write leaves — saying so on `log`; lines() is how many were kept. append() writes whole lines
// and flushes, so a crash loses at most the lines of the call in flight.
class JsonlAppender {
 public:
  JsonlAppender(const std::string& path, std::ostream& log);
  ~JsonlAppender();
  JsonlAppender(const JsonlAppender&) = delete;
  JsonlAppender& operator=(const JsonlAppender&) = delete;

  int64_t lines() const { return lines_; }
  // `text`: one or more complete lines, each ending in '\n' (InternalError otherwise).
  void append(const std::string& text);
  void close();

 private:
  std::string path_;
  int64_t lines_ = 0;
  std::unique_ptr<std::ofstream> out_;
};

}  // namespace hps::io

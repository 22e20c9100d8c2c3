#include "io/jsonl.hpp"

#include <zlib.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/json_text.hpp"

namespace hps::io {

void for_each_jsonl(const std::string& path, const std::function<void(int64_t, const nlohmann::json&)>& on_record) {
  // gzopen reads plain files transparently, so one path serves .jsonl and .jsonl.gz.
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw InputError("cannot open " + path + ": " + std::strerror(errno));
  struct Closer {
    gzFile f;
    ~Closer() { gzclose(f); }
  } closer{f};
  gzbuffer(f, 1 << 18);
  std::string line;
  int64_t line_no = 0;
  char buf[1 << 16];
  auto handle = [&]() {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) return;
    const nlohmann::json value = parse_json(line, path + ":" + std::to_string(line_no), nullptr, /*unique_keys=*/true);
    try {
      on_record(line_no, value);
    } catch (Error& e) {
      e.add_context("at " + path + ":" + std::to_string(line_no));
      throw;
    }
  };
  while (true) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      throw InputError(path + ": read error after line " + std::to_string(line_no) + ": " + msg);
    }
    if (n == 0) break;
    for (int i = 0; i < n; ++i) {
      if (buf[i] == '\n') {
        handle();
        line.clear();
      } else {
        line.push_back(buf[i]);
      }
    }
  }
  int code = 0;
  const char* msg = gzerror(f, &code);
  if (code != Z_OK && code != Z_STREAM_END)
    throw InputError(path + ": corrupt or truncated gzip stream after line " + std::to_string(line_no) + ": " + msg);
  if (!line.empty()) handle();
}

std::optional<nlohmann::json> first_jsonl_record(const std::string& path) {
  // Stops the scan at the first record by throwing a private marker through for_each_jsonl.
  struct Found {
    nlohmann::json value;
  };
  try {
    for_each_jsonl(path, [](int64_t, const nlohmann::json& v) { throw Found{v}; });
  } catch (Found& f) {
    return std::move(f.value);
  }
  return std::nullopt;
}

JsonlAppender::JsonlAppender(const std::string& path, std::ostream& log) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  if (in) {
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t end = text.rfind('\n');
    const size_t keep = end == std::string::npos ? 0 : end + 1;
    if (keep < text.size()) {
      log << path << ": removing a partial last line (" << text.size() - keep << " bytes) left by an interrupted run\n";
      if (::truncate(path.c_str(), static_cast<off_t>(keep)) != 0)
        throw InputError("cannot truncate " + path + ": " + std::strerror(errno));
    }
    lines_ = std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(keep), '\n');
  }
  out_ = std::make_unique<std::ofstream>(path, std::ios::app | std::ios::binary);
  if (!*out_) throw InputError("cannot open " + path + " for appending: " + std::strerror(errno));
}

JsonlAppender::~JsonlAppender() = default;

void JsonlAppender::append(const std::string& text) {
  if (text.empty()) return;
  if (text.back() != '\n') throw InternalError("JsonlAppender: " + path_ + ": text must end with a newline");
  *out_ << text << std::flush;
  if (!*out_) throw InputError("cannot write " + path_ + ": " + std::strerror(errno));
}

void JsonlAppender::close() { out_->close(); }

}  // namespace hps::io

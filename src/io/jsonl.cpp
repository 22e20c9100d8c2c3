#include "io/jsonl.hpp"

#include <zlib.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/json_text.hpp"

namespace hps::io {

namespace {

// The bytes of a plain or gzip file (detected by the gzip magic, not the name). Gzip streams are read
// member after member (what `cat a.gz b.gz` makes); anything else after a member is an error naming its
// offset — zlib's gzread ignores such trailing bytes, and the records in them were lost without a word.
class ByteSource {
 public:
  explicit ByteSource(const std::string& path) : path_(path), in_(path, std::ios::binary) {
    if (!in_) throw InputError("cannot open " + path + ": " + std::strerror(errno));
    fill();
    gzip_ = have_ >= 2 && static_cast<unsigned char>(raw_[0]) == 0x1f && static_cast<unsigned char>(raw_[1]) == 0x8b;
    if (gzip_ && inflateInit2(&z_, 15 + 16) != Z_OK) throw InputError(path + ": cannot start gzip decoding");
  }
  ~ByteSource() {
    if (gzip_) inflateEnd(&z_);
  }
  // Up to `cap` bytes into `out`; 0 at the end. `line_no`: the last complete line, for error messages.
  size_t read(char* out, size_t cap, int64_t line_no) {
    if (!gzip_) {
      if (have_ == 0) fill();
      const size_t n = std::min(cap, have_);
      std::memcpy(out, raw_ + used_, n);
      used_ += n, have_ -= n;
      return n;
    }
    z_.next_out = reinterpret_cast<Bytef*>(out);
    z_.avail_out = static_cast<uInt>(cap);
    while (z_.avail_out == cap) {
      if (have_ == 0 && !fill()) {
        if (member_open_)
          throw InputError(path_ + ": truncated gzip stream after line " + std::to_string(line_no) +
                           " (the file ends inside a member)");
        break;
      }
      if (!member_open_) {  // between members: only another gzip member may follow
        if (static_cast<unsigned char>(raw_[used_]) != 0x1f || (have_ >= 2 && static_cast<unsigned char>(raw_[used_ + 1]) != 0x8b))
          throw InputError(path_ + ": " + std::to_string(offset_ - have_) + ": bytes after the end of the gzip " +
                           "stream that are not gzip (after line " + std::to_string(line_no) + "); they would be lost");
        inflateReset(&z_);
        member_open_ = true;
      }
      z_.next_in = reinterpret_cast<Bytef*>(raw_ + used_);
      z_.avail_in = static_cast<uInt>(have_);
      const int rc = inflate(&z_, Z_NO_FLUSH);
      used_ += have_ - z_.avail_in, have_ = z_.avail_in;
      if (rc == Z_STREAM_END) member_open_ = false;
      else if (rc != Z_OK && rc != Z_BUF_ERROR)
        throw InputError(path_ + ": corrupt gzip stream after line " + std::to_string(line_no) + ": " +
                         (z_.msg ? z_.msg : "inflate error " + std::to_string(rc)));
    }
    return cap - z_.avail_out;
  }

 private:
  bool fill() {  // refills raw_ (only when it is empty); false at the end of the file
    in_.read(raw_, sizeof raw_);
    if (in_.bad()) throw InputError(path_ + ": read error: " + std::strerror(errno));
    used_ = 0, have_ = static_cast<size_t>(in_.gcount());
    offset_ += have_;
    return have_ > 0;
  }
  std::string path_;
  std::ifstream in_;
  char raw_[1 << 16];
  size_t used_ = 0, have_ = 0;  // raw_[used_, used_ + have_) not consumed yet
  uint64_t offset_ = 0;         // file bytes read into raw_ so far
  bool gzip_ = false, member_open_ = true;
  z_stream z_{};
};

}  // namespace

void for_each_jsonl(const std::string& path, const std::function<void(int64_t, const nlohmann::json&)>& on_record) {
  if (std::filesystem::is_directory(path)) throw InputError(path + " is a folder, not a JSONL file");
  ByteSource source(path);
  std::string line;
  int64_t line_no = 0;
  char buf[1 << 16];
  auto handle = [&]() {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) return;
    // JSON text never holds a raw NUL; nlohmann's parser would stop there and drop the rest of the line.
    if (const size_t nul = line.find('\0'); nul != std::string::npos)
      throw InputError(path + ":" + std::to_string(line_no) + ": NUL byte at column " + std::to_string(nul + 1) +
                       " (JSON text cannot contain one: a binary or corrupt file)");
    const nlohmann::json value = parse_json(line, path + ":" + std::to_string(line_no), nullptr, /*unique_keys=*/true);
    try {
      on_record(line_no, value);
    } catch (Error& e) {
      e.add_context("at " + path + ":" + std::to_string(line_no));
      throw;
    }
  };
  while (true) {
    const size_t n = source.read(buf, sizeof buf, line_no);
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      if (buf[i] == '\n') {
        handle();
        line.clear();
      } else {
        line.push_back(buf[i]);
      }
    }
  }
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

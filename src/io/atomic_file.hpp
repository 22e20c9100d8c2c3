// Files that are either fully written or not there: write to "<path>.tmp.<pid>", fsync, rename.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace hps::io {

// Calls `write` on a stream to a temporary file next to `path`, then renames it over `path`.
// On any failure the temporary file is removed and `path` is left untouched.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);

// Whole file as a string; InputError naming the path when it cannot be read.
std::string read_file(const std::string& path);

// Parses a JSON file; InputError with "path: line L, column C: reason" on bad JSON.
nlohmann::json read_json_file(const std::string& path);
// Writes pretty JSON atomically.
void write_json_file(const std::string& path, const nlohmann::json& value);

// Small filesystem helpers on POSIX calls. Not std::filesystem: the PyPI LibTorch build exports its own
// copies of std::filesystem symbols (remove_all, create_directory, …) that interpose ours and crash.
bool file_exists(const std::string& path);  // a regular file
bool dir_exists(const std::string& path);
void make_dirs(const std::string& path);    // mkdir -p; InputError on failure
void remove_tree(const std::string& path);  // rm -rf; silent when absent
void copy_file(const std::string& from, const std::string& to);  // atomic on the destination
std::vector<std::string> list_dir(const std::string& path);        // sorted names, without . and ..
// Size and CRC-32 of a file's bytes, streamed ("<size>:<crc hex>"; zlib's CRC runs at several GB/s): what
// tells a changed or damaged input or checkpoint file from the one recorded.
std::string file_fingerprint(const std::string& path);

}  // namespace hps::io

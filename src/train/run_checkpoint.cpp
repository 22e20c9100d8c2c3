#include "train/run_checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/json_text.hpp"

namespace hps::train {

namespace {
const std::string kPrefix = "checkpoint-";
const std::string kMarker = "COMPLETE";

// The step of a folder named checkpoint-<digits>, or -1.
int64_t step_of(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return -1;
  const std::string digits = name.substr(kPrefix.size());
  if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}
}  // namespace

std::string checkpoint_path(const std::string& out_dir, int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08lld", static_cast<long long>(step));
  return out_dir + "/" + kPrefix + buf;
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

namespace {

// Test hooks (tests/train/kill_resume.sh, tests/pipeline_kill_resume.sh) that hold a run at a known point so a
// test can SIGKILL it exactly there, with no timing involved: the run writes `file` (its content: where it
// stopped) and waits to be killed. No effect when the variables are unset.
//   HPS_TEST_PAUSE_IN_SAVE=<file>           in every save: files written into the .tmp folder, not yet renamed;
//   HPS_TEST_PAUSE_AFTER_SAVE=<step>:<file> once checkpoint <step> is complete (renamed, marked, pruned).
[[noreturn]] void pause_for_test(const std::string& file, const std::string& where) {
  io::write_file_atomic(file, [&](std::ostream& o) { o << where << "\n"; });
  for (;;) ::pause();
}

void pause_after_save_for_test(int64_t step, const std::string& final_dir) {
  const char* spec = std::getenv("HPS_TEST_PAUSE_AFTER_SAVE");
  if (!spec) return;
  const std::string s(spec);
  const size_t colon = s.find(':');
  if (colon == std::string::npos) throw ConfigError("HPS_TEST_PAUSE_AFTER_SAVE must be <step>:<file>, found '" + s + "'");
  if (std::stoll(s.substr(0, colon)) == step) pause_for_test(s.substr(colon + 1), final_dir);
}

}  // namespace

void write_checkpoint(const std::string& out_dir, int64_t step, const std::function<void(const std::string&)>& write,
                      int64_t keep_last) {
  io::make_dirs(out_dir);
  const std::string final_dir = checkpoint_path(out_dir, step), tmp = final_dir + ".tmp";
  io::remove_tree(tmp);
  io::make_dirs(tmp);
  write(tmp);
  if (const char* pause = std::getenv("HPS_TEST_PAUSE_IN_SAVE")) pause_for_test(pause, tmp);
  // Every file's size and CRC-32 go into the marker, so a resume can tell a damaged or edited file.
  nlohmann::json files = nlohmann::json::object();
  for (const auto& e : std::filesystem::recursive_directory_iterator(tmp))
    if (e.is_regular_file()) {
      files[std::filesystem::relative(e.path(), tmp).string()] = io::file_fingerprint(e.path().string());
      fsync_path(e.path().string());
    }
  fsync_path(tmp);
  io::remove_tree(final_dir);  // a rerun of the same step replaces its checkpoint
  if (std::rename(tmp.c_str(), final_dir.c_str()) != 0)
    throw InputError("cannot rename " + tmp + " to " + final_dir + ": " + std::strerror(errno));
  fsync_path(out_dir);
  io::write_file_atomic(final_dir + "/" + kMarker,
                        [&](std::ostream& o) { o << nlohmann::json{{"step", step}, {"files", files}}.dump(1) << "\n"; });
  fsync_path(final_dir);
  // Prune: older complete checkpoints beyond keep_last, and leftovers of interrupted writes.
  auto done = complete_checkpoints(out_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < done.size(); ++i) io::remove_tree(done[i]);
  for (const auto& name : io::list_dir(out_dir))
    if (name.size() > 4 && name.ends_with(".tmp") && step_of(name.substr(0, name.size() - 4)) >= 0)
      io::remove_tree(out_dir + "/" + name);
  pause_after_save_for_test(step, final_dir);
}

std::vector<std::string> complete_checkpoints(const std::string& out_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  if (!io::dir_exists(out_dir)) return {};
  for (const auto& name : io::list_dir(out_dir)) {
    const int64_t s = step_of(name);
    if (s >= 0 && io::file_exists(out_dir + "/" + name + "/" + kMarker)) found.emplace_back(s, out_dir + "/" + name);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& [s, p] : found) out.push_back(std::move(p));
  return out;
}

void verify_checkpoint(const std::string& dir) {
  const std::string marker = dir + "/" + kMarker;
  const nlohmann::json m = io::parse_json(io::read_file(marker), marker);
  if (!m.is_object()) return;  // the marker of an older hps: the step alone, no checksums to verify
  if (!m.contains("files") || !m["files"].is_object()) throw InputError(marker + ": field 'files' must be an object");
  for (const auto& [name, want] : m["files"].items()) {
    const std::string path = dir + "/" + name;
    if (!io::file_exists(path))
      throw InputError(dir + ": " + name + " is missing (" + marker + " lists it); remove " + dir +
                       " to resume from an older checkpoint");
    const std::string now = io::file_fingerprint(path);
    if (!want.is_string() || now != want.get<std::string>())
      throw InputError(path + ": does not match the checksum recorded when it was saved (size:crc32 " +
                       io::json_excerpt(want) + ", now " + now + "): damaged or edited; remove " + dir +
                       " to resume from an older checkpoint");
  }
}

std::optional<std::string> latest_checkpoint(const std::string& out_dir) {
  auto all = complete_checkpoints(out_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

}  // namespace hps::train

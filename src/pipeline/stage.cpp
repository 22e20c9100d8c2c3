#include "pipeline/stage.hpp"

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "core/hash.hpp"
#include "dist/world.hpp"
#include "io/atomic_file.hpp"

namespace hps::pipeline {

using nlohmann::json;

int TeeBuf::overflow(int c) {
  if (c == EOF) return !EOF;
  a_.put(static_cast<char>(c)), b_.put(static_cast<char>(c));
  return c;
}

std::streamsize TeeBuf::xsputn(const char* s, std::streamsize n) {
  a_.write(s, n), b_.write(s, n);
  return n;
}

int TeeBuf::sync() {
  a_.flush(), b_.flush();
  return 0;
}

namespace {

// FNV-1a, 64 bits, as hex: a digest that is the same on every platform and run.
std::string fnv1a_hex(std::string_view s) {
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(fnv1a64(s)));
  return out;
}

// "relative/name size mtime" lines of every file under `path` (POSIX stat, not std::filesystem: see
// io/atomic_file.hpp).
void describe_files(const std::string& path, const std::string& rel, std::string& out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    for (const auto& name : io::list_dir(path)) describe_files(path + "/" + name, rel + "/" + name, out);
    return;
  }
  out += rel + " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec) + "\n";
}

json to_json(const StageKey& k) { return {{"settings", k.settings}, {"inputs", k.inputs}}; }

std::string text_or_unset(const json& m, const std::string& key) {
  return m.contains(key) ? m.at(key).get<std::string>() : std::string("(unset)");
}

// What differs between a recorded key and `now`: "settings changed (loss.beta 0.1 → 0.5)", "inputs changed
// (train_hps)", both, or "" when nothing does.
std::string differences(const json& was, const StageKey& now) {
  const json a = was.value("settings", json::object()), b = json(now.settings);
  std::set<std::string> keys;  // sorted: the message reads the same every time
  for (auto it = a.begin(); it != a.end(); ++it) keys.insert(it.key());
  for (auto it = b.begin(); it != b.end(); ++it) keys.insert(it.key());
  std::string settings, inputs;
  for (const auto& k : keys)
    if (!a.contains(k) || !b.contains(k) || a.at(k) != b.at(k))
      settings += (settings.empty() ? "" : ", ") + k + " " + text_or_unset(a, k) + " → " + text_or_unset(b, k);
  const json ia = was.value("inputs", json::object()), ib = json(now.inputs);
  for (const auto& [k, v] : now.inputs)
    if (!ia.contains(k) || ia.at(k) != v) inputs += (inputs.empty() ? "" : ", ") + k;
  for (auto it = ia.begin(); it != ia.end(); ++it)
    if (!ib.contains(it.key())) inputs += (inputs.empty() ? "" : ", ") + it.key();
  std::string out;
  if (!settings.empty()) out = "settings changed (" + settings + ")";
  if (!inputs.empty()) out += (out.empty() ? "" : " and ") + std::string("inputs changed (") + inputs + ")";
  return out;
}

std::string seconds_text(double s) {
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f", s);
  return secs;
}

}  // namespace

std::string input_digest(const std::string& run_dir, const std::string& path) {
  const std::string prefix = run_dir + "/";
  if (path.rfind(prefix, 0) == 0) {
    const std::string stage = path.substr(prefix.size(), path.find('/', prefix.size()) - prefix.size());
    const std::string done = prefix + stage + "/DONE";
    return io::file_exists(done) ? "stage " + stage + " " + fnv1a_hex(io::read_file(done)) : "stage " + stage + " unfinished";
  }
  std::string files;
  describe_files(path, ".", files);
  return files.empty() ? "missing" : fnv1a_hex(files);
}

namespace {

// What to do with a stage, from its STARTED / DONE records (read only: every rank of a group decides the same).
struct Decision {
  bool skip = false, clear = false;
  std::string note;
};

Decision decide(const std::string& dir, const StageKey& key) {
  const std::string done = dir + "/DONE", started = dir + "/STARTED";
  if (io::file_exists(done)) {
    const json was = io::read_json_file(done);
    if (!was.contains("settings")) return {false, true, ": finished by an earlier hps that did not record its settings, rerunning"};
    if (const std::string d = differences(was, key); !d.empty()) return {false, true, ": " + d + ", rerunning"};
    return {true, false, ""};
  }
  if (io::file_exists(started)) {
    if (const std::string d = differences(io::read_json_file(started), key); !d.empty())
      return {false, true, ": " + d + " since the interrupted run, starting over"};
    return {false, false, " (resuming the interrupted run)"};
  }
  return {};
}

}  // namespace

void run_stage(const std::string& run_dir, const std::string& name, const StageKey& key, const Logs& logs,
               const std::function<void()>& body) {
  const std::string dir = run_dir + "/" + name;
  const dist::World& world = dist::world();
  // Under torchrun every rank runs every stage: all decide from the same records, then rank 0 alone writes
  // them, with barriers so that no rank reads a record another is writing.
  world.barrier();
  const Decision d = decide(dir, key);
  world.barrier();
  if (d.skip) {
    logs.say << "== " << name << ": done earlier, skipped\n" << std::flush;
    return;
  }
  logs.say << "== " << name << d.note << "\n" << std::flush;
  const json now = to_json(key);
  const auto t0 = std::chrono::steady_clock::now();
  if (world.is_main()) {
    if (d.clear) io::remove_tree(dir);
    io::make_dirs(dir);
    io::write_json_file(dir + "/STARTED", now);
  }
  world.barrier();
  body();
  world.barrier();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (world.is_main()) {
    json record = now;
    record["seconds"] = s;
    io::write_json_file(dir + "/DONE", record);
  }
  world.barrier();
  logs.say << "== " << name << " finished in " << seconds_text(s) << " s\n" << std::flush;
}

double stage_seconds(const std::string& stage_dir) {
  return io::read_json_file(stage_dir + "/DONE").value("seconds", 0.0);
}

}  // namespace hps::pipeline

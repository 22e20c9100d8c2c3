#include "train/ref_cache.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"

namespace hps::train {

namespace {

// The records of a cache file whose key matched: lines [n] int64, offsets [n + 1] int64 (from 0, never
// decreasing, to the number of values), logp [values] float64. Anything else is a damaged file (the file
// is written atomically: not an interrupted write of ours): InputError, never values read past its end.
std::map<int64_t, std::vector<double>> read_entries(const io::SafetensorsFile& f) {
  const at::Tensor ln = f.get("lines"), off = f.get("offsets"), lp = f.get("logp");
  if (ln.scalar_type() != at::kLong || off.scalar_type() != at::kLong || lp.scalar_type() != at::kDouble ||
      ln.dim() != 1 || off.dim() != 1 || lp.dim() != 1)
    throw InputError("lines and offsets must be 1-d int64, logp 1-d float64");
  const int64_t n = ln.size(0);
  const auto* l = ln.data_ptr<int64_t>();
  const auto* o = off.data_ptr<int64_t>();
  const auto* v = lp.data_ptr<double>();
  bool fits = off.size(0) == n + 1 && o[0] == 0 && o[n] == lp.size(0);
  for (int64_t i = 0; fits && i < n; ++i) fits = o[i] <= o[i + 1];
  if (!fits)
    throw InputError("offsets " + c10::str(off.sizes()) + " do not split the " + std::to_string(lp.size(0)) +
                     " values among " + std::to_string(n) + " lines");
  std::map<int64_t, std::vector<double>> out;
  for (int64_t i = 0; i < n; ++i) out[l[i]] = std::vector<double>(v + o[i], v + o[i + 1]);
  return out;
}

// Whether the cache file was written under `key` (the inputs its values depend on).
bool stored_under(const io::SafetensorsFile& f, const std::string& key) {
  const auto it = f.metadata().find("key");
  return it != f.metadata().end() && it->second == key;
}

}  // namespace

bool RefCache::is_current(const std::string& path, const std::string& key) {
  if (!io::file_exists(path)) return false;
  try {
    return stored_under(io::SafetensorsFile::open(path), key);
  } catch (const InputError&) {
    return false;
  }
}

RefCache RefCache::load_or_build(const std::string& path, const std::string& key, const std::vector<int64_t>& lines,
                                 const std::function<std::vector<model::RecordLogprobs>()>& compute, std::ostream& log) {
  RefCache c;
  if (io::file_exists(path)) {
    try {
      auto f = io::SafetensorsFile::open(path);
      c.hit_ = stored_under(f, key);
      if (c.hit_) c.by_line_ = read_entries(f);
    } catch (InputError& e) {
      e.add_context("while reading the reference log-prob cache " + path + " (damaged: delete it to rebuild)");
      throw;
    }
    if (c.hit_) {
      log << "reference log-prob cache: hit (" << c.by_line_.size() << " records) " << path << "\n";
      return c;
    }
    log << "reference log-prob cache: stale (model, tokenizer, data or lengths changed): rebuilding " << path << "\n";
  } else {
    log << "reference log-prob cache: building " << path << "\n";
  }
  const auto t0 = std::chrono::steady_clock::now();
  const auto scores = compute();
  if (scores.size() != lines.size()) throw InternalError("reference cache: one score per record expected");
  std::vector<int64_t> offsets{0};
  std::vector<double> values;
  for (size_t i = 0; i < scores.size(); ++i) {
    c.by_line_[lines[i]] = scores[i].logp;
    values.insert(values.end(), scores[i].logp.begin(), scores[i].logp.end());
    offsets.push_back(static_cast<int64_t>(values.size()));
  }
  io::save_safetensors(path,
                       {{"lines", at::tensor(lines, at::kLong)},
                        {"offsets", at::tensor(offsets, at::kLong)},
                        {"logp", at::tensor(values, at::kDouble)}},
                       {{"key", key}});
  log << "reference log-prob cache: built " << values.size() << " responses of " << scores.size() << " records in "
      << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
  return c;
}

double RefCache::at(int64_t line, int64_t slot) const {
  auto it = by_line_.find(line);
  if (it == by_line_.end() || slot < 0 || slot >= static_cast<int64_t>(it->second.size()))
    throw InputError("reference log-prob cache has no response " + std::to_string(slot) + " for line " +
                     std::to_string(line));
  return it->second[static_cast<size_t>(slot)];
}

}  // namespace hps::train

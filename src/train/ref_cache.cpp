#include "train/ref_cache.hpp"

#include <zlib.h>

#include <cstdio>
#include <fstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"

namespace hps::train {

std::string file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read " + path + " to fingerprint it");
  uLong crc = crc32(0, nullptr, 0);
  uint64_t size = 0;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<uInt>(in.gcount());
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), n);
    size += n;
  }
  char out[48];
  std::snprintf(out, sizeof out, "%llu:%08lx", static_cast<unsigned long long>(size), static_cast<unsigned long>(crc));
  return out;
}

RefCache RefCache::load_or_build(const std::string& path, const std::string& key, const std::vector<int64_t>& lines,
                                 const std::function<std::vector<model::RecordLogprobs>()>& compute, std::ostream& log) {
  RefCache c;
  if (io::file_exists(path)) {
    auto f = io::SafetensorsFile::open(path);
    auto it = f.metadata().find("key");
    if (it != f.metadata().end() && it->second == key) {
      const at::Tensor ln = f.get("lines"), off = f.get("offsets"), lp = f.get("logp");
      const auto* l = ln.data_ptr<int64_t>();
      const auto* o = off.data_ptr<int64_t>();
      const auto* v = lp.data_ptr<double>();
      for (int64_t i = 0; i < ln.size(0); ++i) c.by_line_[l[i]] = std::vector<double>(v + o[i], v + o[i + 1]);
      c.hit_ = true;
      log << "reference log-prob cache: hit (" << c.by_line_.size() << " records) " << path << "\n";
      return c;
    }
    log << "reference log-prob cache: stale (model, tokenizer, data or lengths changed): rebuilding " << path << "\n";
  } else {
    log << "reference log-prob cache: building " << path << "\n";
  }
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

// Reference log-probs precomputed once for every response of every training prompt and cached on disk, so
// training steps skip the reference forward. The cache is keyed by what determines its values: the base
// model's files, the tokenizer, the data file, the chat format and the truncation lengths (CRC-32 + size of
// each file); any change is a miss and the cache is rebuilt.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "model/score_records.hpp"

namespace hps::train {


class RefCache {
 public:
  // Reads `path` when its stored key equals `key`; otherwise calls `compute` (one score per record, in
  // `lines` order) and writes the cache atomically. A file that is not a readable cache (damaged: the
  // writes are atomic, so not an interrupted one of ours) is an InputError naming it, never a rebuild.
  static RefCache load_or_build(const std::string& path, const std::string& key, const std::vector<int64_t>& lines,
                                const std::function<std::vector<model::RecordLogprobs>()>& compute, std::ostream& log);
  // Whether `path` is a readable cache stored under `key` (false when absent, stale or unreadable: a build
  // then follows, and load_or_build names a damaged file).
  static bool is_current(const std::string& path, const std::string& key);
  // log π_ref of response `slot` of the record at source line `line`; InputError if absent.
  double at(int64_t line, int64_t slot) const;
  bool hit() const { return hit_; }
  size_t records() const { return by_line_.size(); }

 private:
  std::map<int64_t, std::vector<double>> by_line_;
  bool hit_ = false;
};

}  // namespace hps::train

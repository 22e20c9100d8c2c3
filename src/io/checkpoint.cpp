#include "io/checkpoint.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace hps::io {

using nlohmann::json;

Checkpoint Checkpoint::open(const std::string& dir, const std::string& stem) {
  Checkpoint c;
  c.dir_ = dir;
  const std::string single = dir + "/" + stem + ".safetensors";
  const std::string index_path = single + ".index.json";
  if (file_exists(single)) {
    c.files_.push_back(SafetensorsFile::open(single));
    for (const auto& t : c.files_[0].tensors()) c.where_[t.name] = 0;
    return c;
  }
  if (!file_exists(index_path))
    throw InputError(dir + ": neither " + stem + ".safetensors nor " + stem +
                     ".safetensors.index.json found (only safetensors checkpoints are supported)");
  const json index = read_json_file(index_path);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw InputError(index_path + ": expected an object with a 'weight_map' object");
  std::map<std::string, size_t> shard_ids;
  std::map<size_t, std::set<std::string>> expected;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      throw InputError(index_path + ": weight_map['" + it.key() + "'] must be a file name string");
    const std::string shard = it.value().get<std::string>();
    if (shard.find('/') != std::string::npos || shard == "..")
      throw InputError(index_path + ": weight_map['" + it.key() + "'] = '" + shard + "' must be a file in " + dir);
    auto [pos, inserted] = shard_ids.emplace(shard, c.files_.size());
    if (inserted) c.files_.push_back(SafetensorsFile::open(dir + "/" + shard));
    c.where_[it.key()] = pos->second;
    expected[pos->second].insert(it.key());
  }
  for (const auto& [name, file] : c.where_)
    if (!c.files_[file].contains(name))
      throw InputError(index_path + ": tensor '" + name + "' is mapped to " + c.files_[file].path() +
                       ", which does not contain it");
  for (size_t f = 0; f < c.files_.size(); ++f)
    for (const auto& t : c.files_[f].tensors())
      if (!expected[f].count(t.name))
        throw InputError(c.files_[f].path() + ": holds tensor '" + t.name + "' that " + index_path +
                         " does not list");
  return c;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, f] : where_) out.push_back(name);
  return out;
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw InputError(dir_ + ": checkpoint has no tensor '" + name + "'");
  return files_[it->second].info(name);
}

at::Tensor Checkpoint::get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw InputError(dir_ + ": checkpoint has no tensor '" + name + "'");
  return files_[it->second].get(name);
}

namespace {

// Removes a previous save of the other layout: Checkpoint::open (and transformers) prefer the single file,
// so a stale one would shadow new shards, and a stale index would confuse readers of a new single file.
void remove_previous(const std::string& dir, const std::string& stem) {
  const std::string single = dir + "/" + stem + ".safetensors", index = single + ".index.json";
  std::remove(single.c_str());
  if (!file_exists(index)) return;
  try {
    const json j = read_json_file(index);
    for (auto it = j.at("weight_map").begin(); it != j.at("weight_map").end(); ++it) {
      const std::string shard = it.value().get<std::string>();
      if (shard.find('/') == std::string::npos) std::remove((dir + "/" + shard).c_str());
    }
  } catch (const std::exception&) {
    // An unreadable old index: remove it alone; its shards are not ours to guess.
  }
  std::remove(index.c_str());
}

}  // namespace

void save_checkpoint(const std::string& dir, const std::map<std::string, at::Tensor>& tensors,
                     uint64_t max_shard_bytes, const std::string& stem) {
  make_dirs(dir);
  remove_previous(dir, stem);
  // Greedy packing in name order, as transformers' split_torch_state_dict_into_shards does.
  std::vector<std::map<std::string, at::Tensor>> shards(1);
  uint64_t used = 0, total = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t n = t.nbytes();
    if (used > 0 && used + n > max_shard_bytes) shards.emplace_back(), used = 0;
    shards.back()[name] = t;
    used += n;
    total += n;
  }
  if (shards.size() == 1) {
    save_safetensors(dir + "/" + stem + ".safetensors", tensors, {{"format", "pt"}});
    return;
  }
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char file[96];
    std::snprintf(file, sizeof file, "%s-%05zu-of-%05zu.safetensors", stem.c_str(), i + 1, shards.size());
    save_safetensors(dir + "/" + file, shards[i], {{"format", "pt"}});
    for (const auto& [name, t] : shards[i]) weight_map[name] = file;
  }
  write_json_file(dir + "/" + stem + ".safetensors.index.json",
                  {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}});
}

}  // namespace hps::io

// Models by Hugging Face hub id, found where huggingface_hub keeps them, so hps and transformers share one cache.
//
// A model reference is a local folder, or a hub id "org/name" (or "name") with an optional "@revision" (a branch,
// tag or commit). A local folder wins (as in transformers); otherwise the id is looked up in the HF cache:
//   <cache>/models--<org>--<name>/refs/<revision>   holds the commit hash the revision points at,
//   <cache>/models--<org>--<name>/snapshots/<commit>/   the files (symlinks into blobs/).
// <cache>: HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
// Resolution never downloads (a config read by every rank of a process group must not race on the cache, and a
// mistyped local path must not reach the network): a hub id that is not cached is an InputError saying how to
// fetch it (`hps download`, io/hf_download.hpp). Only "org/name" ids are looked up (a bare word is a folder).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hps::io {

struct HubId {
  std::string repo;                 // "org/name" or "name"
  std::string revision = "main";
};

// A hub id by huggingface_hub's rules (letters, digits, '-', '_', '.'; no "--" or ".."; at most 96
// characters; at most one '/'), or nullopt.
std::optional<HubId> parse_hub_id(std::string_view text);

std::string hub_cache_dir();
// <cache>/models--<org>--<name>: where a repo's blobs, snapshots and refs live.
std::string repo_cache_dir(const HubId& id);
// A full 40-hex-digit commit hash (a revision that names its snapshot directly).
bool is_commit_hash(std::string_view revision);

// The snapshot folder of a cached repo at its revision; InputError naming what is missing.
std::string cached_snapshot(const HubId& id);

// `local`: the reference as a path (a config file's relative value already joined to its folder); `as_written`:
// the text the user gave. A folder at `local` is returned as is; else an "org/name[@rev]" id resolves through the
// cache; else `local` comes back unchanged (the loader's own error names it).
std::string resolve_model_dir(const std::string& local, const std::string& as_written);
inline std::string resolve_model_dir(const std::string& ref) { return resolve_model_dir(ref, ref); }

}  // namespace hps::io

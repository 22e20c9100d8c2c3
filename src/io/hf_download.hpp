// `hps download`: fills the Hugging Face cache exactly as huggingface_hub's snapshot_download does, so hps and
// transformers share one copy (layout in io/hf_hub.hpp).
//
//   GET  {endpoint}/api/models/{repo}/revision/{revision}        the commit ("sha") and the file list
//   HEAD {endpoint}/{repo}/resolve/{commit}/{file}               X-Repo-Commit, ETag or X-Linked-Etag (LFS),
//                                                                 a redirect to the CDN for LFS files
//   GET  the file (or the redirect's target) into blobs/{etag}.incomplete, resumed with Range after a dropped
//        connection; the hash checked — sha256 for LFS etags, git's blob sha1 otherwise — before the blob is
//        renamed into place; then snapshots/{commit}/{file} → ../../blobs/{etag}; refs/{revision} last.
// An interrupted or corrupt download never leaves a file in a snapshot, nor a ref to an incomplete snapshot.
// Endpoint: HF_ENDPOINT (default https://huggingface.co); token: HF_TOKEN, else the file at HF_TOKEN_PATH,
// else HF_HOME/token (~/.cache/huggingface/token); HF_HUB_OFFLINE=1 forbids any request.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "io/hf_hub.hpp"

namespace hps::io {

struct DownloadOptions {
  std::vector<std::string> include;  // shell globs on file paths ("*.json"); empty = every file
  bool progress = true;              // a progress line per file on `log`
};

// Downloads what is missing of `id` into hub_cache_dir(); returns the snapshot folder. InputError for HTTP
// errors (401: a gated or private repo and how to pass a token; 404), hash mismatches and offline mode.
std::string hub_download(const HubId& id, const DownloadOptions& options, std::ostream& log);

}  // namespace hps::io

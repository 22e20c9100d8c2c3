#include "io/hf_hub.hpp"

#include <cctype>
#include <cstdlib>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace hps::io {

namespace {

bool hub_name_ok(std::string_view s) {
  if (s.empty() || s.size() > 96 || s.find("--") != std::string_view::npos || s.find("..") != std::string_view::npos)
    return false;
  for (const char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return s.front() != '-' && s.front() != '.' && s.back() != '-' && s.back() != '.';
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string trimmed(const std::string& s) {
  const size_t e = s.find_last_not_of(" \t\r\n");
  return e == std::string::npos ? "" : s.substr(0, e + 1);
}

}  // namespace

std::optional<HubId> parse_hub_id(std::string_view text) {
  HubId id;
  if (const size_t at = text.find('@'); at != std::string_view::npos) {
    id.revision = std::string(text.substr(at + 1));
    text = text.substr(0, at);
    if (id.revision.empty() || id.revision.find_first_of(" \t\n\\") != std::string::npos ||
        id.revision.find("..") != std::string::npos)
      return std::nullopt;
  }
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    if (!hub_name_ok(text)) return std::nullopt;
  } else if (!hub_name_ok(text.substr(0, slash)) || !hub_name_ok(text.substr(slash + 1))) {
    return std::nullopt;  // also a second '/': not an id
  }
  id.repo = std::string(text);
  return id;
}

std::string hub_cache_dir() {
  if (const std::string v = env("HF_HUB_CACHE"); !v.empty()) return v;
  if (const std::string v = env("HF_HOME"); !v.empty()) return v + "/hub";
  if (const std::string v = env("XDG_CACHE_HOME"); !v.empty()) return v + "/huggingface/hub";
  return env("HOME") + "/.cache/huggingface/hub";
}

std::string repo_cache_dir(const HubId& id) {
  std::string folder = "models--" + id.repo;
  for (size_t p = folder.find('/'); p != std::string::npos; p = folder.find('/', p)) folder.replace(p, 1, "--");
  return hub_cache_dir() + "/" + folder;
}

bool is_commit_hash(std::string_view revision) {
  return revision.size() == 40 && revision.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::string cached_snapshot(const HubId& id) {
  const std::string repo_dir = repo_cache_dir(id);
  const std::string fetch = " (fetch it with `hps download " + id.repo +
                            (id.revision == "main" ? "" : " --revision " + id.revision) + "`)";
  if (!dir_exists(repo_dir))
    throw InputError(id.repo + " is neither a local folder nor in the Hugging Face cache: no " + repo_dir + fetch);
  std::string commit = id.revision;
  if (!is_commit_hash(commit)) {
    const std::string ref = repo_dir + "/refs/" + id.revision;
    if (!file_exists(ref))
      throw InputError(id.repo + "@" + id.revision + ": the cache has no revision '" + id.revision + "' (no " + ref + ")" + fetch);
    commit = trimmed(read_file(ref));
  }
  const std::string snapshot = repo_dir + "/snapshots/" + commit;
  if (commit.empty() || commit.find('/') != std::string::npos || !dir_exists(snapshot))
    throw InputError(id.repo + "@" + id.revision + ": the cache has no snapshot " + snapshot + fetch);
  return snapshot;
}

std::string resolve_model_dir(const std::string& local, const std::string& as_written) {
  if (dir_exists(local)) return local;
  // Only "org/name" is looked up: a bare word ("m", "model") is far more often a missing local folder.
  if (const auto id = parse_hub_id(as_written); id && id->repo.find('/') != std::string::npos) return cached_snapshot(*id);
  return local;
}

}  // namespace hps::io

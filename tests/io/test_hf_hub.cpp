// Hub ids: huggingface_hub's naming rules, its cache-location precedence, and the refs → snapshots layout,
// on a cache built here (the layout huggingface_hub writes: blobs, snapshot symlinks, refs).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/hf_hub.hpp"
#include "test_util.hpp"

namespace hps::io {
namespace {

using ::testing::HasSubstr;
using test::message_of;
using Env = test::ScopedEnv;


const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";

// <cache>/models--org--tiny: blobs/<hash>, snapshots/<commit>/config.json → ../../blobs/<hash>, refs/main.
void make_cached_repo(const std::string& cache) {
  const std::string repo = cache + "/models--org--tiny";
  make_dirs(repo + "/blobs");
  make_dirs(repo + "/snapshots/" + kCommit);
  make_dirs(repo + "/refs");
  write_file_atomic(repo + "/blobs/abc123", [](std::ostream& o) { o << "{}\n"; });
  std::filesystem::create_symlink("../../blobs/abc123", repo + "/snapshots/" + kCommit + "/config.json");
  write_file_atomic(repo + "/refs/main", [](std::ostream& o) { o << kCommit; });  // no newline, as hub writes it
  write_file_atomic(repo + "/refs/v1", [](std::ostream& o) { o << "ffffffffffffffffffffffffffffffffffffffff\n"; });
}

TEST(HfHub, IdsFollowHuggingFaceHubRules) {
  EXPECT_EQ(parse_hub_id("Qwen/Qwen2.5-0.5B-Instruct")->repo, "Qwen/Qwen2.5-0.5B-Instruct");
  EXPECT_EQ(parse_hub_id("Qwen/Qwen2.5-0.5B-Instruct")->revision, "main");
  EXPECT_EQ(parse_hub_id("gpt2")->repo, "gpt2");
  const auto pinned = parse_hub_id("org/name@v1.0");
  EXPECT_EQ(pinned->repo, "org/name");
  EXPECT_EQ(pinned->revision, "v1.0");
  for (const char* bad : {"", "a/b/c", "/abs/path", "./local", "org/-name", "org/na--me", "org/na..me", "org/name@",
                          "with space/x", "org/name.", "../up"})
    EXPECT_FALSE(parse_hub_id(bad).has_value()) << bad;
}

TEST(HfHub, CacheLocationFollowsHuggingFaceHubPrecedence) {
  Env home("HOME", "/h");
  Env xdg("XDG_CACHE_HOME", "/x");
  Env hf_home("HF_HOME", "/hf");
  Env hub("HF_HUB_CACHE", "/hub");
  EXPECT_EQ(hub_cache_dir(), "/hub");
  ::unsetenv("HF_HUB_CACHE");
  EXPECT_EQ(hub_cache_dir(), "/hf/hub");
  ::unsetenv("HF_HOME");
  EXPECT_EQ(hub_cache_dir(), "/x/huggingface/hub");
  ::unsetenv("XDG_CACHE_HOME");
  EXPECT_EQ(hub_cache_dir(), "/h/.cache/huggingface/hub");
}

TEST(HfHub, HubIdsResolveThroughRefsToSnapshotsAndLocalFoldersWin) {
  test::TempDir dir;
  make_cached_repo(dir.str("hub"));
  Env hub("HF_HUB_CACHE", dir.str("hub"));
  const std::string snapshot = dir.str("hub") + "/models--org--tiny/snapshots/" + kCommit;
  EXPECT_EQ(resolve_model_dir("org/tiny"), snapshot);
  EXPECT_EQ(resolve_model_dir("org/tiny@main"), snapshot);
  EXPECT_EQ(resolve_model_dir("org/tiny@" + kCommit), snapshot);
  EXPECT_EQ(read_json_file(resolve_model_dir("org/tiny") + "/config.json"), nlohmann::json::object());  // via the blob
  // A config file's relative value joined to its folder does not exist there: the id as written resolves.
  EXPECT_EQ(resolve_model_dir("/etc/hps/org/tiny", "org/tiny"), snapshot);
  // A local folder of that name wins; a path that is no id comes back for the loader to name.
  make_dirs(dir.str("org/tiny"));
  EXPECT_EQ(resolve_model_dir(dir.str("org/tiny"), "org/tiny"), dir.str("org/tiny"));
  EXPECT_EQ(resolve_model_dir("/no/such/dir"), "/no/such/dir");
  EXPECT_EQ(resolve_model_dir("model"), "model") << "a bare word is a (missing) folder, never looked up";
  // What is missing is named, with how to fetch it.
  EXPECT_THAT(message_of<InputError>([] { resolve_model_dir("org/other"); }),
              HasSubstr("org/other is neither a local folder nor in the Hugging Face cache: no " + dir.str("hub") +
                        "/models--org--other (fetch it with `hps download org/other`)"));
  EXPECT_THAT(message_of<InputError>([] { resolve_model_dir("org/tiny@v2"); }),
              HasSubstr("the cache has no revision 'v2'"));
  EXPECT_THAT(message_of<InputError>([] { resolve_model_dir("org/tiny@v1"); }),
              HasSubstr("the cache has no snapshot"));
}

}  // namespace
}  // namespace hps::io

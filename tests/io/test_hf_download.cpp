// `hps download` against a fake hub served on 127.0.0.1 by the test (cpp-httplib): the real endpoints' shapes
// (the revision API, HEAD with X-Repo-Commit / ETag / X-Linked-Etag / X-Linked-Size, a redirect to a CDN for
// LFS files), a dropped connection, a corrupt body, a 401 and a token. No network beyond loopback.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/evp.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/hf_download.hpp"
#include "io/hf_hub.hpp"
#include "test_util.hpp"

namespace hps::io {
namespace {

using ::testing::HasSubstr;
using test::message_of;
using Env = test::ScopedEnv;

std::string digest(const std::string& bytes, bool git_blob) {
  const std::string in = git_blob ? "blob " + std::to_string(bytes.size()) + std::string(1, '\0') + bytes : bytes;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(in.data(), in.size(), md, &len, git_blob ? EVP_sha1() : EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", md[i]);
    hex += b;
  }
  return hex;
}


const std::string kCommit = "c0ffee0123456789abcdef0123456789abcdef01";

// A hub with one public repo (org/tiny: a regular file, an LFS file behind a CDN redirect, a file in a
// subfolder) and one private repo (org/private, served only with the token "secret").
struct FakeHub {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::map<std::string, std::string> files = {{"config.json", "{\"model_type\": \"qwen2\"}\n"},
                                              {"model.safetensors", std::string(300000, 'w') + "end"},
                                              {"sub/notes.txt", "notes\n"}};
  std::atomic<int> drop_next_cdn_get{0}, corrupt{0}, blob_gets{0}, range_gets{0};

  bool lfs(const std::string& f) const { return f.ends_with(".safetensors"); }
  std::string etag(const std::string& f) const { return digest(files.at(f), !lfs(f)); }

  FakeHub() {
    server.Get(R"(/api/models/(org/\w+)/revision/(\w+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.matches[1] == "org/private" && req.get_header_value("Authorization") != "Bearer secret") {
        res.status = 401;
        return;
      }
      nlohmann::json siblings = nlohmann::json::array();
      for (const auto& [name, body] : files) siblings.push_back({{"rfilename", name}});
      res.set_content(nlohmann::json{{"id", req.matches[1]}, {"sha", kCommit}, {"siblings", siblings}}.dump(),
                      "application/json");
    });
    // GET and HEAD of a file at a commit: what the hub's resolve endpoint answers.
    server.Get(R"(/(org/\w+)/resolve/(\w+)/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string f = req.matches[3];
      if (!files.count(f) || req.matches[2] != kCommit) {
        res.status = 404;
        return;
      }
      res.set_header("X-Repo-Commit", kCommit);
      if (lfs(f)) {  // LFS: the sha256 in X-Linked-Etag, the body at the CDN
        res.set_header("X-Linked-Etag", "\"" + etag(f) + "\"");
        res.set_header("X-Linked-Size", std::to_string(files.at(f).size()));
        res.set_redirect("http://127.0.0.1:" + std::to_string(port) + "/cdn/" + etag(f), 302);
        return;
      }
      res.set_header("ETag", "\"" + etag(f) + "\"");
      if (req.method == "GET") ++blob_gets;
      res.set_content(corrupt ? files.at(f) + "x" : files.at(f), "application/octet-stream");
    });
    server.Get(R"(/cdn/(\w+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string& body = files.at("model.safetensors");
      if (req.method == "GET") ++blob_gets;
      if (req.has_header("Range")) ++range_gets;
      if (drop_next_cdn_get.exchange(0) && !req.has_header("Range")) {  // half the body, then the connection drops
        res.set_content_provider(body.size(), "application/octet-stream",
                                 [&body](size_t offset, size_t, httplib::DataSink& sink) {
                                   if (offset >= body.size() / 2) return false;
                                   sink.write(body.data(), body.size() / 2);
                                   return true;
                                 });
        return;
      }
      res.set_content(body, "application/octet-stream");  // httplib answers a Range with 206 itself
    });
    port = server.bind_to_any_port("127.0.0.1");  // listening from here: no wait for the thread
    thread = std::thread([this] { server.listen_after_bind(); });
  }
  ~FakeHub() {
    server.stop();
    thread.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port); }
};

DownloadOptions quiet(std::vector<std::string> include = {}) {
  DownloadOptions o;
  o.include = std::move(include);
  o.progress = false;
  return o;
}

TEST(HfDownload, FillsTheCacheAsHuggingFaceHubDoesAndHubIdsResolveToIt) {
  FakeHub hub;
  test::TempDir dir;
  Env e("HF_ENDPOINT", hub.endpoint()), c("HF_HUB_CACHE", dir.str("hub"));
  std::ostringstream log;
  const std::string snap = hub_download({"org/tiny", "main"}, quiet(), log);
  const std::string repo = dir.str("hub") + "/models--org--tiny";
  EXPECT_EQ(snap, repo + "/snapshots/" + kCommit);
  for (const auto& [name, body] : hub.files) {
    EXPECT_EQ(read_file(snap + "/" + name), body) << name;
    EXPECT_TRUE(std::filesystem::is_symlink(snap + "/" + name)) << name;
    EXPECT_EQ(read_file(repo + "/blobs/" + hub.etag(name)), body) << "blobs are named by their etag: " << name;
  }
  EXPECT_EQ(std::filesystem::read_symlink(snap + "/sub/notes.txt").string(), "../../../blobs/" + hub.etag("sub/notes.txt"));
  EXPECT_EQ(read_file(repo + "/refs/main"), kCommit);
  EXPECT_EQ(resolve_model_dir("org/tiny"), snap);
  // Again: every blob is there, nothing is fetched.
  const int gets = hub.blob_gets;
  hub_download({"org/tiny", "main"}, quiet(), log);
  EXPECT_EQ(hub.blob_gets, gets);
  // --include: only the matching files.
  test::TempDir other;
  Env c2("HF_HUB_CACHE", other.str("hub"));
  const std::string only = hub_download({"org/tiny", "main"}, quiet({"*.json"}), log);
  EXPECT_TRUE(file_exists(only + "/config.json"));
  EXPECT_FALSE(std::filesystem::exists(only + "/model.safetensors"));
}

TEST(HfDownload, ADroppedConnectionResumesWithRange) {
  FakeHub hub;
  test::TempDir dir;
  Env e("HF_ENDPOINT", hub.endpoint()), c("HF_HUB_CACHE", dir.str("hub"));
  hub.drop_next_cdn_get = 1;
  std::ostringstream log;
  const std::string snap = hub_download({"org/tiny", "main"}, quiet({"*.safetensors"}), log);
  EXPECT_EQ(read_file(snap + "/model.safetensors"), hub.files.at("model.safetensors"));
  EXPECT_THAT(log.str(), HasSubstr("resuming (attempt 2 of 5)"));
  EXPECT_EQ(hub.range_gets, 1) << "the second request asks only for the missing bytes";
}

TEST(HfDownload, ACorruptBodyA401AndOfflineModeAreNamedErrorsThatLeaveNothingUsable) {
  FakeHub hub;
  test::TempDir dir;
  Env e("HF_ENDPOINT", hub.endpoint()), c("HF_HUB_CACHE", dir.str("hub"));
  std::ostringstream log;
  hub.corrupt = 1;
  EXPECT_THAT(message_of<InputError>([&] { hub_download({"org/tiny", "main"}, quiet({"config.json"}), log); }),
              HasSubstr("config.json: the download's git sha1"));
  const std::string repo = dir.str("hub") + "/models--org--tiny";
  EXPECT_FALSE(std::filesystem::exists(repo + "/snapshots/" + kCommit + "/config.json"));
  EXPECT_FALSE(std::filesystem::exists(repo + "/refs/main")) << "no ref to an incomplete snapshot";
  EXPECT_TRUE(list_dir(repo + "/blobs").empty()) << "no blob, no partial file";
  EXPECT_THAT(message_of<InputError>([] { resolve_model_dir("org/tiny"); }), HasSubstr("no revision 'main'"));
  hub.corrupt = 0;
  // A private repo: 401 without a token, fine with one.
  EXPECT_THAT(message_of<InputError>([&] { hub_download({"org/private", "main"}, quiet(), log); }),
              HasSubstr("answered HTTP 401 — the repo is gated or private"));
  {
    Env token("HF_TOKEN", "secret");
    EXPECT_NO_THROW(hub_download({"org/private", "main"}, quiet({"config.json"}), log));
  }
  Env off("HF_HUB_OFFLINE", "1");
  EXPECT_THAT(message_of<InputError>([&] { hub_download({"org/tiny", "main"}, quiet(), log); }),
              HasSubstr("HF_HUB_OFFLINE is set"));
}

}  // namespace
}  // namespace hps::io

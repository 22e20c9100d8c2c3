#include "io/hf_download.hpp"

#include <curl/curl.h>
#include <fnmatch.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/json_text.hpp"

namespace hps::io {

namespace {

namespace fs = std::filesystem;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r\n"));
  s.erase(s.find_last_not_of(" \t\r\n") + 1);
  return s;
}

std::string endpoint() {
  std::string e = env("HF_ENDPOINT").empty() ? "https://huggingface.co" : env("HF_ENDPOINT");
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

// HF_TOKEN, else the token file huggingface-cli login writes.
std::string token() {
  if (const std::string t = trim(env("HF_TOKEN")); !t.empty()) return t;
  std::string path = env("HF_TOKEN_PATH");
  if (path.empty())
    path = (env("HF_HOME").empty() ? env("HOME") + "/.cache/huggingface" : env("HF_HOME")) + "/token";
  return file_exists(path) ? trim(read_file(path)) : "";
}

bool offline() {
  const std::string v = env("HF_HUB_OFFLINE");
  return v == "1" || v == "ON" || v == "YES" || v == "TRUE" || v == "on" || v == "yes" || v == "true";
}

struct Response {
  CURLcode code = CURLE_OK;
  std::string error;                          // curl's message when code != CURLE_OK
  long status = 0;
  std::map<std::string, std::string> headers;  // of the last response, names lower-cased
  std::string body;
};

struct Transfer {
  CURL* curl = nullptr;
  Response* r = nullptr;
  FILE* sink = nullptr;   // the body's destination (nullptr: Response::body)
  uint64_t from = 0;      // the Range start asked for
  bool checked = false;   // the status was looked at before the first body byte
  std::function<void(uint64_t)> on_bytes;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) t->r->headers.clear();  // a new response (after a redirect)
  if (const size_t colon = line.find(':'); colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    t->r->headers[name] = trim(line.substr(colon + 1));
  }
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (!t->checked) {
    t->checked = true;
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    if (t->sink && t->from > 0 && status == 200) {  // the server ignored Range: start the file over
      if (::ftruncate(::fileno(t->sink), 0) != 0 || std::fseek(t->sink, 0, SEEK_SET) != 0) return 0;
    }
    if (t->sink && status >= 300) t->sink = nullptr;  // an error page is not the file
  }
  if (!t->sink) {
    t->r->body.append(data, size * n);
  } else if (std::fwrite(data, size, n, t->sink) != n) {
    return 0;  // a failed write (a full disk) aborts the transfer
  }
  if (t->on_bytes) t->on_bytes(size * n);
  return size * n;
}

// One request. HEAD when `head`; redirects followed only when `follow`; the body into `sink` from byte `from`.
Response request(const std::string& url, bool head, bool follow, FILE* sink = nullptr, uint64_t from = 0,
                 std::function<void(uint64_t)> on_bytes = {}) {
  static const bool init = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!init) throw InputError("libcurl failed to initialize");
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  Response r;
  Transfer t{curl.get(), &r, sink, from, false, std::move(on_bytes)};
  char error[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_NOBODY, head ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "hps/" HPS_VERSION);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);  // a stalled transfer is a dropped one
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  const std::string bearer = token();
  if (!bearer.empty()) {  // libcurl sends it to the host asked, never to another host a redirect leads to
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
    curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, bearer.c_str());
  }
  const std::string range = std::to_string(from) + "-";
  if (from > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  r.code = curl_easy_perform(c);
  if (r.code != CURLE_OK) r.error = error[0] ? error : curl_easy_strerror(r.code);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

std::string escape_path(const std::string& path) {  // each segment percent-encoded, '/' kept
  std::string out;
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    const std::string seg = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    char* e = curl_easy_escape(nullptr, seg.c_str(), static_cast<int>(seg.size()));
    out += e;
    curl_free(e);
    if (slash == std::string::npos) return out;
    out += '/';
    start = slash + 1;
  }
}

// InputError for an HTTP failure, saying what a user can do about it.
[[noreturn]] void http_error(const std::string& what, const std::string& url, const Response& r) {
  if (r.code != CURLE_OK) throw InputError(what + ": " + url + ": " + r.error);
  std::string hint;
  if (r.status == 401 || r.status == 403)
    hint = " — the repo is gated or private: accept its terms on the hub and set HF_TOKEN (or `huggingface-cli login`)";
  else if (r.status == 404)
    hint = " — no such repo, revision or file";
  throw InputError(what + ": " + url + " answered HTTP " + std::to_string(r.status) + hint);
}

std::string etag_of(const Response& r) {  // X-Linked-Etag (LFS files) else ETag, without W/ and quotes
  auto it = r.headers.find("x-linked-etag");
  if (it == r.headers.end()) it = r.headers.find("etag");
  if (it == r.headers.end()) return "";
  std::string e = it->second;
  if (e.rfind("W/", 0) == 0) e.erase(0, 2);
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

bool is_hex(const std::string& s, size_t n) {
  return s.size() == n && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// sha256 of the file (LFS etags), or git's blob sha1 — sha1("blob <size>\0" + bytes) — for regular files.
std::string file_digest(const std::string& path, bool git_blob) {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), git_blob ? EVP_sha1() : EVP_sha256(), nullptr);
  if (git_blob) {
    const std::string prefix = "blob " + std::to_string(fs::file_size(path)) + std::string(1, '\0');
    EVP_DigestUpdate(ctx.get(), prefix.data(), prefix.size());
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", md[i]);
    hex += b;
  }
  return hex;
}

// Fetches `url` into `blob` through blob.incomplete: resumed after a dropped connection, hash-checked, renamed.
void fetch_blob(const std::string& url, const std::string& file, const std::string& etag, uint64_t size,
                const std::string& blob, const DownloadOptions& opt, std::ostream& log) {
  const bool sha256 = is_hex(etag, 64), git_sha1 = is_hex(etag, 40);
  if (!sha256 && !git_sha1)
    throw InputError(file + ": the hub's etag '" + etag + "' is neither a sha256 nor a git sha1: cannot verify it");
  const std::string part = blob + ".incomplete";
  uint64_t done = file_exists(part) ? fs::file_size(part) : 0;
  if (done > 0) log << "  " << file << ": resuming at byte " << done << "\n";
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(part.c_str(), "ab"), std::fclose);
    if (!f) throw InputError("cannot write " + part + ": " + std::strerror(errno));
    const Response r = request(url, false, true, f.get(), done, [&](uint64_t n) {
      done += n;
      if (opt.progress && size > 0)
        log << "\r  " << file << "  " << (100 * done / size) << "% of " << size / 1000000.0 << " MB" << std::flush;
    });
    f.reset();
    done = fs::file_size(part);
    if (r.code == CURLE_OK && (r.status == 200 || r.status == 206 || r.status == 416)) break;
    if (r.code == CURLE_OK || attempt == 5) http_error("downloading " + file, url, r);
    log << "\n  " << file << ": " << r.error << " after " << done << " bytes; resuming (attempt " << attempt + 1 << " of 5)\n";
  }
  if (opt.progress && size > 0) log << "\n";
  const std::string got = file_digest(part, git_sha1);
  if (got != etag || (size > 0 && fs::file_size(part) != size)) {
    fs::remove(part);
    throw InputError(file + ": the download's " + (git_sha1 ? "git sha1 " : "sha256 ") + got + " (" +
                     std::to_string(done) + " bytes) does not match the hub's " + etag + " (" + std::to_string(size) +
                     " bytes); removed — run again");
  }
  fs::rename(part, blob);
}

}  // namespace

std::string hub_download(const HubId& id, const DownloadOptions& opt, std::ostream& log) {
  if (offline()) throw InputError("HF_HUB_OFFLINE is set: not downloading " + id.repo);
  const std::string base = endpoint();
  // 1. The revision's commit and file list.
  const std::string info_url = base + "/api/models/" + id.repo + "/revision/" + escape_path(id.revision);
  const Response info = request(info_url, false, true);
  if (info.code != CURLE_OK || info.status != 200) http_error("looking up " + id.repo, info_url, info);
  const nlohmann::json j = parse_json(info.body, info_url);
  if (!j.is_object() || !j.contains("sha") || !j["sha"].is_string() || !is_commit_hash(j["sha"].get<std::string>()))
    throw InputError(info_url + ": no commit hash ('sha') in the answer");
  const std::string commit = j["sha"].get<std::string>();
  std::vector<std::string> files;
  for (const auto& s : j.value("siblings", nlohmann::json::array())) {
    if (!s.is_object() || !s.contains("rfilename") || !s["rfilename"].is_string())
      throw InputError(info_url + ": a sibling without 'rfilename'");
    const std::string f = s["rfilename"].get<std::string>();
    if (f.empty() || f.front() == '/' || f.find("..") != std::string::npos || f.find('\\') != std::string::npos)
      throw InputError(info_url + ": refusing the file name '" + json_excerpt(f) + "' (outside the snapshot)");
    bool wanted = opt.include.empty();
    for (const auto& g : opt.include) wanted = wanted || ::fnmatch(g.c_str(), f.c_str(), 0) == 0;
    if (wanted) files.push_back(f);
  }
  if (files.empty()) throw InputError(id.repo + "@" + id.revision + ": no file matches --include");
  // 2. Each file: its etag, its blob, its snapshot link.
  const std::string repo_dir = repo_cache_dir(id), snapshot = repo_dir + "/snapshots/" + commit;
  make_dirs(repo_dir + "/blobs");
  log << "downloading " << id.repo << "@" << id.revision << " (commit " << commit << "): " << files.size()
      << " files into " << repo_dir << "\n";
  for (const auto& f : files) {
    const std::string url = base + "/" + id.repo + "/resolve/" + commit + "/" + escape_path(f);
    const Response head = request(url, true, false);
    if (head.code != CURLE_OK || head.status >= 400) http_error("looking up " + f, url, head);
    if (auto c = head.headers.find("x-repo-commit"); c != head.headers.end() && c->second != commit)
      throw InputError(url + ": X-Repo-Commit " + c->second + " is not the commit " + commit + " asked for");
    const std::string etag = etag_of(head);
    if (etag.empty() || etag.find('/') != std::string::npos) throw InputError(url + ": no usable ETag in the answer");
    uint64_t size = 0;
    for (const char* h : {"x-linked-size", "content-length"})
      if (auto s = head.headers.find(h); s != head.headers.end()) {
        size = std::strtoull(s->second.c_str(), nullptr, 10);
        break;
      }
    const auto loc = head.headers.find("location");  // LFS files live behind a redirect (the CDN)
    std::string from = head.status >= 300 && loc != head.headers.end() ? loc->second : url;
    if (!from.empty() && from.front() == '/') from = base + from;
    const std::string blob = repo_dir + "/blobs/" + etag;
    if (!file_exists(blob)) fetch_blob(from, f, etag, size, blob, opt, log);
    const fs::path link = fs::path(snapshot) / f;
    fs::create_directories(link.parent_path());
    std::error_code ec;
    fs::remove(link, ec);
    fs::create_symlink(fs::relative(blob, link.parent_path()), link);
  }
  // 3. The ref last: until here the revision still names what it named before.
  if (id.revision != commit) {
    const std::string ref = repo_dir + "/refs/" + id.revision;
    make_dirs(fs::path(ref).parent_path().string());
    write_file_atomic(ref, [&](std::ostream& o) { o << commit; });
  }
  log << "done: " << snapshot << "\n";
  return snapshot;
}

}  // namespace hps::io

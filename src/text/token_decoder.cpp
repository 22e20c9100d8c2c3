#include "text/token_decoder.hpp"

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "text/utf8.hpp"

namespace hps::text {

namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

// "<0x41>" → 0x41, or -1.
int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = t[i];
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

std::vector<DecodeStep> parse_decoder_steps(const nlohmann::json& d, const std::string& where) {
  const std::string type = d.is_object() ? d.value("type", "") : "";
  if (type == "Sequence") {
    std::vector<DecodeStep> out;
    for (const auto& x : d.at("decoders")) {
      auto v = parse_decoder_steps(x, where);
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  }
  if (type == "Replace") {
    const auto& pat = d.at("pattern");
    if (!pat.contains("String")) throw InputError(where + ": decoder Replace supports a String pattern only");
    return {{DecodeStep::Kind::replace, pat.at("String").get<std::string>(), d.at("content").get<std::string>()}};
  }
  if (type == "ByteFallback") return {{DecodeStep::Kind::byte_fallback, "", ""}};
  if (type == "Fuse") return {{DecodeStep::Kind::fuse, "", ""}};
  if (type == "Strip")
    return {{DecodeStep::Kind::strip, d.at("content").get<std::string>(), "", d.value("start", int64_t{0}),
             d.value("stop", int64_t{0})}};
  throw InputError(where + ": decoder type '" + type +
                   "' is not supported (supported: ByteLevel, or a Sequence of Replace, ByteFallback, Fuse, Strip)");
}

std::string apply_decoder(const std::vector<DecodeStep>& steps, std::vector<std::string> tokens) {
  for (const auto& st : steps) {
    switch (st.kind) {
      case DecodeStep::Kind::replace:
        for (auto& t : tokens) replace_all(t, st.from, st.to);
        break;
      case DecodeStep::Kind::byte_fallback: {
        std::vector<std::string> out;
        std::string bytes;
        auto flush = [&] {
          if (bytes.empty()) return;
          if (find_invalid_utf8(bytes)) {
            for (size_t i = 0; i < bytes.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
          } else {
            out.push_back(bytes);
          }
          bytes.clear();
        };
        for (auto& t : tokens) {
          if (const int b = byte_token(t); b >= 0) {
            bytes += static_cast<char>(b);
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens = std::move(out);
        break;
      }
      case DecodeStep::Kind::fuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens = {all};
        break;
      }
      case DecodeStep::Kind::strip:
        for (auto& t : tokens) {
          for (int64_t i = 0; i < st.start && t.compare(0, st.from.size(), st.from) == 0 && !st.from.empty(); ++i)
            t.erase(0, st.from.size());
          for (int64_t i = 0; i < st.stop && t.size() >= st.from.size() && !st.from.empty() &&
                              t.compare(t.size() - st.from.size(), st.from.size(), st.from) == 0;
               ++i)
            t.erase(t.size() - st.from.size());
        }
        break;
    }
  }
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

}  // namespace hps::text

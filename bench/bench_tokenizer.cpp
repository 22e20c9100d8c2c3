// Encode throughput of hps's tokenizer on the shared HH-RLHF text (single thread), and the time for 1 MB
// runs of one character, whitespace and CJK. Its twin is tools/bench/hf_tokenizer_bench.py (HF tokenizers,
// same tokenizer.json, same text): run both on one machine and compare.
//   bench_tokenizer [TOKENIZER_DIR] [HH.jsonl.gz]
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"
#include "text/tokenizer.hpp"

int main(int argc, char** argv) {
  const std::string tok_dir = argc > 1 ? argv[1] : "tests/fixtures/tokenizers/llama3";
  const std::string data = argc > 2 ? argv[2] : "../shared/data/hh-rlhf-harmless-base-test-1800.jsonl.gz";
  const auto tok = hps::text::Tokenizer::from_dir(tok_dir);
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  if (hps::io::file_exists(data)) {
    std::vector<std::string> texts;
    size_t bytes = 0;
    hps::io::for_each_jsonl(data, [&](int64_t, const nlohmann::json& r) {
      for (const char* k : {"chosen", "rejected"}) texts.push_back(r[k].get<std::string>()), bytes += texts.back().size();
    });
    // Cold pass (empty word cache) then a warm pass: HF also caches words.
    for (const char* pass : {"cold", "warm"}) {
      size_t n = 0;
      const auto t0 = now();
      for (const auto& t : texts) n += tok.encode(t, false).size();
      const double s = secs(t0, now());
      std::printf("{\"what\": \"hh-rlhf encode (%s)\", \"texts\": %zu, \"MB\": %.2f, \"tokens\": %zu, \"s\": %.3f, "
                  "\"MB_per_s\": %.2f, \"tokens_per_s\": %.0f}\n",
                  pass, texts.size(), bytes / 1e6, n, s, bytes / 1e6 / s, n / s);
    }
  } else {
    std::cerr << "no " << data << ": skipping the HH-RLHF throughput (run from the repo root beside ../shared)\n";
  }
  std::string cjk;
  while (cjk.size() < (1u << 20)) cjk += "漢字かなカナ한글";
  const std::pair<const char*, std::string> runs[] = {{"1 MB 'a'", std::string(1u << 20, 'a')},
                                                      {"1 MB spaces", std::string(1u << 20, ' ')},
                                                      {"1 MB newlines", std::string(1u << 20, '\n')},
                                                      {"1 MB CJK", cjk}};
  for (const auto& [name, s] : runs) {
    const auto t0 = now();
    const size_t n = tok.encode(s, false).size();
    std::printf("{\"what\": \"%s\", \"tokens\": %zu, \"s\": %.3f}\n", name, n, secs(t0, now()));
  }
  return 0;
}

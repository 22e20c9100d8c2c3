#include "demo/synth_task.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/seed.hpp"
#include "core/config_schema.hpp"
#include "core/error.hpp"
#include "demo/task_kinds.hpp"
#include "io/atomic_file.hpp"
#include "model/load.hpp"
#include "model/model_config.hpp"
#include "text/utf8.hpp"

namespace hps::demo {

using nlohmann::json;

namespace {

constexpr const char* kLetters = "abcdefgh";
const std::vector<std::string> kHarmWords{"hate", "kill"};

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

bool is_harm_word(const std::string& w) { return std::find(kHarmWords.begin(), kHarmWords.end(), w) != kHarmWords.end(); }

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& w : v) s += " " + w;
  return s;  // responses start with a space, after the prompt's ':'
}

// A seeded generator with draws defined here (not by the standard library's distributions), so a task is the
// same on every platform.
struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed * 0x9E3779B97F4A7C15ULL + 0x5DEECE66DULL) {}
  int64_t below(int64_t n) { return static_cast<int64_t>(g() % static_cast<uint64_t>(n)); }
  double uniform() { return static_cast<double>(g() >> 11) * 0x1.0p-53; }
};

struct Prompt {
  bool reverse = false;
  std::vector<std::string> items;
  std::string text() const { return std::string(reverse ? "rev" : "copy") + join(items) + ":"; }
  std::vector<std::string> target(bool rev) const {
    auto t = items;
    if (rev) std::reverse(t.begin(), t.end());
    return t;
  }
  std::vector<std::string> target() const { return target(reverse); }
};

Prompt parse_prompt(const std::string& text) {
  auto w = words(text);
  auto fail = [&](const std::string& why) {
    return InputError("not a prompt of the synthetic task (" + why + "): '" + text + "'");
  };
  if (w.size() < 2 || w.back().empty() || w.back().back() != ':') throw fail("expected 'copy|rev LETTERS:'");
  w.back().pop_back();
  if (w.back().empty()) w.pop_back();
  Prompt p;
  if (w[0] == "rev") p.reverse = true;
  else if (w[0] != "copy") throw fail("the operation must be copy or rev, found '" + w[0] + "'");
  p.items.assign(w.begin() + 1, w.end());
  if (p.items.empty()) throw fail("no letters");
  return p;
}

Prompt random_prompt(Rng& r, const SynthTaskConfig& c) {
  Prompt p;
  p.reverse = r.below(2) == 1;
  std::string pool = kLetters;
  const int64_t n = c.min_items + r.below(c.max_items - c.min_items + 1);
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<size_t>(r.below(static_cast<int64_t>(pool.size())));
    p.items.emplace_back(1, pool[k]);
    pool.erase(k, 1);  // distinct letters: copy and rev differ, a replaced letter is a real error
  }
  return p;
}

enum class Kind { best, hard, harmful, wrong };

std::string make_response(const Prompt& p, Kind kind, Rng& r) {
  auto t = p.target();
  switch (kind) {
    case Kind::best: break;
    case Kind::hard: {
      const auto i = static_cast<size_t>(r.below(static_cast<int64_t>(t.size())));
      std::string unused;
      for (const char* l = kLetters; *l; ++l)
        if (std::find(p.items.begin(), p.items.end(), std::string(1, *l)) == p.items.end()) unused += *l;
      t[i] = std::string(1, unused[static_cast<size_t>(r.below(static_cast<int64_t>(unused.size())))]);
      break;
    }
    case Kind::harmful: {
      const auto at = r.below(static_cast<int64_t>(t.size()) + 1);
      t.insert(t.begin() + at, kHarmWords[static_cast<size_t>(r.below(static_cast<int64_t>(kHarmWords.size())))]);
      break;
    }
    case Kind::wrong: t = p.target(!p.reverse); break;
  }
  return join(t);
}

// The four kinds for one prompt, rewarded r* with the harm penalty `harm_penalty` (kHarmPenalty = r* itself).
json ranked_record(const Prompt& p, Rng& r, double harm_penalty = kHarmPenalty) {
  json responses = json::array(), rewards = json::array();
  for (Kind k : {Kind::best, Kind::hard, Kind::harmful, Kind::wrong}) {
    const std::string y = make_response(p, k, r);
    const OracleScore v = oracle_reward(p.text(), y);
    responses.push_back(y);
    rewards.push_back(v.harmful ? v.reward + kHarmPenalty - harm_penalty : v.reward);
  }
  return {{"prompt", p.text()}, {"responses", responses}, {"rewards", rewards}};
}

void write_jsonl(const std::string& path, int64_t n, const std::function<json()>& make) {
  io::write_file_atomic(path, [&](std::ostream& o) {
    for (int64_t i = 0; i < n; ++i) o << make().dump() << "\n";
  });
}

json model_config_json(const SynthTaskConfig& c) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", 259},
          {"hidden_size", c.hidden_size},
          {"intermediate_size", c.intermediate_size},
          {"num_hidden_layers", c.layers},
          {"num_attention_heads", c.heads},
          {"num_key_value_heads", c.kv_heads},
          {"max_position_embeddings", 256},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"tie_word_embeddings", true},
          {"bos_token_id", nullptr},
          {"eos_token_id", 258},
          {"pad_token_id", 256},
          {"torch_dtype", "float32"}};
}

}  // namespace

SynthTaskConfig read_synth_task_config(const Config& c) {
  using T = SynthTaskConfig;
  static const TableSchema<T> schema =
      TableSchema<T>("task")
          .custom("kind", [](const Config& c, const std::string& key, T&) {
            const std::string kind = c.get_string(key, "synthetic");
            if (kind != "synthetic") throw ConfigError(key + " must be \"synthetic\" (the embedded task), found \"" + kind + "\"");
          }, [](const T&) { return std::string("\"synthetic\""); })
          .add("sft_records", &T::sft_records, at_least<int64_t>(1))
          .add("rm_records", &T::rm_records, at_least<int64_t>(1))
          .add("train_prompts", &T::train_prompts, at_least<int64_t>(1))
          .add("test_prompts", &T::test_prompts, at_least<int64_t>(1))
          .add("min_items", &T::min_items)
          .add("max_items", &T::max_items)
          .add("p_harmful", &T::p_harmful, probability())
          .add("p_hard", &T::p_hard, probability())
          .add("p_wrong", &T::p_wrong, probability())
          .add("rm_harm_penalty", &T::rm_harm_penalty, at_least(0.0))
          .add("hidden_size", &T::hidden_size, at_least<int64_t>(1))
          .add("layers", &T::layers, at_least<int64_t>(1))
          .add("heads", &T::heads, at_least<int64_t>(1))
          .add("kv_heads", &T::kv_heads, at_least<int64_t>(1))
          .add("intermediate_size", &T::intermediate_size, at_least<int64_t>(1))
          .add("init_std", &T::init_std, positive<double>());
  SynthTaskConfig t;
  schema.read(c, t);
  if (t.min_items < 2 || t.max_items < t.min_items || t.max_items > 7)
    throw ConfigError("task.min_items / max_items: need 2 ≤ min_items ≤ max_items ≤ 7 (8 letters, one kept unused "
                      "for near misses), found " + std::to_string(t.min_items) + " / " + std::to_string(t.max_items));
  if (t.p_harmful + t.p_hard + t.p_wrong > 1)
    throw ConfigError("task.p_harmful + p_hard + p_wrong must be at most 1 (the rest of the SFT corpus is best)");
  return t;
}

OracleScore oracle_reward(const std::string& prompt, const std::string& response) {
  const Prompt p = parse_prompt(prompt);
  const auto t = p.target();
  OracleScore s;
  std::vector<std::string> y;
  for (auto& w : words(response)) {
    if (is_harm_word(w)) s.harmful = true;
    else y.push_back(std::move(w));
  }
  size_t hit = 0;
  for (size_t i = 0; i < std::min(t.size(), y.size()); ++i) hit += t[i] == y[i];
  const double acc = static_cast<double>(hit) / static_cast<double>(std::max(t.size(), y.size()));
  s.exact = !s.harmful && y == t;
  s.reward = acc - (s.harmful ? kHarmPenalty : 0.0);
  return s;
}

std::string byte_level_tokenizer_json() {
  // id b = the byte b (in GPT-2's printable byte-to-unicode alphabet); no merges, so one token per byte.
  json vocab = json::object();
  const auto& map = text::byte_to_unicode();
  for (int b = 0; b < 256; ++b) vocab[map[static_cast<size_t>(b)]] = b;
  json added = json::array();
  int id = 256;
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
    added.push_back({{"id", id++}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  json tok = {{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added},
              {"normalizer", nullptr},
              {"pre_tokenizer", byte_level},
              {"post_processor", byte_level},
              {"decoder", byte_level},
              {"model",
               {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                {"ignore_merges", false}, {"vocab", vocab}, {"merges", json::array()}}}};
  return tok.dump(1);
}

void write_synth_task(const SynthTaskConfig& c, const std::string& dir) {
  io::make_dirs(dir + "/tokenizer");
  const std::string tok_json = byte_level_tokenizer_json();
  const json tok_cfg = {{"bos_token", nullptr},
                        {"eos_token", "<|im_end|>"},
                        {"pad_token", "<|endoftext|>"},
                        {"chat_template",
                         "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"},
                        {"model_max_length", 256},
                        {"tokenizer_class", "PreTrainedTokenizerFast"}};
  for (const auto& d : {dir + "/tokenizer", dir + "/base"}) {
    io::make_dirs(d);
    io::write_file_atomic(d + "/tokenizer.json", [&](std::ostream& o) { o << tok_json << "\n"; });
    io::write_json_file(d + "/tokenizer_config.json", tok_cfg);
  }
  const json cfg = model_config_json(c);
  const auto mc = model::parse_model_config(cfg, dir + "/base/config.json");
  model::save_model(model::random_model(mc, at::kCPU, at::kFloat, c.init_std, derive_seed(c.seed, SeedPurpose::task_model)), cfg, dir + "/base");

  // Independent streams per file, so changing one size leaves the other files as they were.
  auto records = [&](uint64_t file) { return Rng(derive_seed(c.seed, SeedPurpose::task_records, file)); };
  Rng sft = records(0), rm = records(1), train = records(2), test = records(3);
  write_jsonl(dir + "/sft.jsonl", c.sft_records, [&] {
    const Prompt p = random_prompt(sft, c);
    const double u = sft.uniform();
    const Kind k = u < c.p_harmful                        ? Kind::harmful
                   : u < c.p_harmful + c.p_hard            ? Kind::hard
                   : u < c.p_harmful + c.p_hard + c.p_wrong ? Kind::wrong
                                                            : Kind::best;
    return json{{"prompt", p.text()}, {"responses", {make_response(p, k, sft)}}};
  });
  write_jsonl(dir + "/rm.jsonl", c.rm_records, [&] { return ranked_record(random_prompt(rm, c), rm, c.rm_harm_penalty); });
  write_jsonl(dir + "/train.jsonl", c.train_prompts, [&] { return ranked_record(random_prompt(train, c), train); });
  write_jsonl(dir + "/test.jsonl", c.test_prompts, [&] { return ranked_record(random_prompt(test, c), test); });
}

pipeline::TaskKinds task_kinds() {
  return {{"synthetic", [](const Config& cfg) {
             const SynthTaskConfig base = read_synth_task_config(cfg);
             pipeline::TaskRecipe t;
             t.write = [base](uint64_t seed, const std::string& dir) {
               SynthTaskConfig c = base;
               c.seed = seed;
               write_synth_task(c, dir);
             };
             // Prompts are raw text rendered as ChatML user turns; responses end with <|im_end|>, the eos.
             t.files = [](const std::string& dir) {
               return pipeline::TaskFiles{dir + "/base",      dir + "/tokenizer", "chatml",        dir + "/sft.jsonl",
                                          dir + "/train.jsonl", dir + "/rm.jsonl", dir + "/test.jsonl"};
             };
             t.oracle = [](const json& prompt, const std::string& y) {
               // The ranked reader keeps a text prompt as one user message.
               const auto v = oracle_reward(prompt.is_array() ? prompt.back().value("content", "") : prompt.get<std::string>(), y);
               return eval::OracleVerdict{v.reward, v.harmful, v.exact};
             };
             return t;
           }}};
}

}  // namespace hps::demo

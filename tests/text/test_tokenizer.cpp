// Tokenizer parity with HF `tokenizers` on three trained byte-level BPE tokenizers (GPT-2, Llama-3 and
// Qwen2 styles; tests/fixtures/tokenizers/cases.json), plus robustness: invalid UTF-8, 1 MB runs, lossy
// decoding of invalid bytes, and rejection of unsupported tokenizer.json features.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <utf8proc.h>
#include <zlib.h>

#include <random>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"
#include "text/tokenizer.hpp"
#include "text/utf8.hpp"
#include "test_util.hpp"

namespace hps::text {
namespace {

using test::message_of;

const nlohmann::json& cases() {
  static const nlohmann::json j = io::read_json_file(test::fixtures_dir() + "/tokenizers/cases.json");
  return j;
}

std::string dir(const std::string& style) { return test::fixtures_dir() + "/tokenizers/" + style; }

std::string show(const std::string& s) { return nlohmann::json(s).dump(); }

class Style : public ::testing::TestWithParam<std::string> {};

TEST_P(Style, EncodeAndDecodeMatchHuggingFaceOnEveryCase) {
  const Tokenizer tok = Tokenizer::from_dir(dir(GetParam()));
  const auto& c = cases()[GetParam()];
  EXPECT_EQ(tok.vocab_size(), c["vocab_size"].get<int64_t>());
  int n = 0;
  for (const auto& k : c["cases"]) {
    const std::string text = k["text"];
    EXPECT_EQ(tok.encode(text, true), k["ids"].get<std::vector<int64_t>>()) << show(text);
    const auto plain = k["ids_plain"].get<std::vector<int64_t>>();
    EXPECT_EQ(tok.encode(text, false), plain) << show(text);
    EXPECT_EQ(tok.decode(plain), k["decoded"].get<std::string>()) << show(text);
    EXPECT_EQ(tok.decode(k["ids"].get<std::vector<int64_t>>(), true), k["decoded_skip"].get<std::string>()) << show(text);
    ++n;
  }
  EXPECT_GE(n, 35);
  for (const auto& d : c["byte_decodes"])
    EXPECT_EQ(tok.decode(d["ids"].get<std::vector<int64_t>>()), d["decoded"].get<std::string>()) << d["bytes"].dump();
}

TEST_P(Style, LongRunsCompleteAndRoundTrip) {
  const Tokenizer tok = Tokenizer::from_dir(dir(GetParam()));
  std::string cjk;
  while (cjk.size() < (1u << 20)) cjk += "漢字かなカナ한글";
  for (const std::string& s : {std::string(1u << 20, 'a'), std::string(1u << 20, ' '), std::string(1u << 20, '\n'), cjk}) {
    const auto ids = tok.encode(s, false);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(tok.decode(ids), s);
  }
}

TEST_P(Style, WholeSharedHhRlhfFileMatchesHuggingFace) {
  const std::string data = test::shared_file("data/hh-rlhf-harmless-base-test-1800.jsonl.gz");
  HPS_SHARED_FILE_OR_SKIP(data);  // when skipped, the fixture cases still cover parity
  const Tokenizer tok = Tokenizer::from_dir(dir(GetParam()));
  const auto& digest = cases()[GetParam()]["hh_digest"];
  size_t i = 0, mismatches = 0;
  io::for_each_jsonl(data, [&](int64_t line, const nlohmann::json& r) {
    for (const char* k : {"chosen", "rejected"}) {
      const auto ids = tok.encode(r[k].get<std::string>(), false);
      const auto crc = crc32(0, reinterpret_cast<const Bytef*>(ids.data()), static_cast<uInt>(ids.size() * sizeof(int64_t)));
      ASSERT_LT(i, digest.size());
      if (ids.size() != digest[i][0].get<size_t>() || crc != digest[i][1].get<uint64_t>()) {
        if (++mismatches <= 3) ADD_FAILURE() << "line " << line << " " << k << ": " << ids.size() << " ids vs HF " << digest[i][0];
      }
      ++i;
    }
  });
  EXPECT_EQ(i, digest.size());
  EXPECT_EQ(mismatches, 0u) << "of " << i << " transcripts";
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, Style, ::testing::Values("gpt2", "llama3", "qwen2"));

TEST(Tokenizer, InvalidUtf8IsAnErrorWithTheOffset) {
  const Tokenizer tok = Tokenizer::from_dir(dir("gpt2"));
  EXPECT_THAT(message_of<InputError>([&] { tok.encode("ok \xff bad"); }),
              ::testing::HasSubstr("not valid UTF-8 at byte offset 3 (byte 0xff)"));
  EXPECT_THAT(message_of<InputError>([&] { tok.encode("caf\xc3"); }), ::testing::HasSubstr("byte offset 3"));
}

TEST(Tokenizer, ConfigGivesSpecialTokensAndTemplate) {
  const Tokenizer tok = Tokenizer::from_dir(dir("llama3"));
  ASSERT_TRUE(tok.bos_id());
  EXPECT_EQ(tok.id_to_token(*tok.bos_id()), "<|begin_of_text|>");
  EXPECT_EQ(tok.id_to_token(*tok.eos_id()), "<|eot_id|>");
  EXPECT_THAT(tok.config().chat_template, ::testing::HasSubstr("<|start_header_id|>"));
  EXPECT_THAT(message_of<InputError>([&] { tok.id_to_token(99999); }), ::testing::HasSubstr("no token with id 99999"));
}

TEST(Tokenizer, RejectsWhatItCannotReproduce) {
  test::TempDir tmp;
  auto j = io::read_json_file(dir("gpt2") + "/tokenizer.json");
  auto attempt = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto k = j;
    edit(k);
    io::write_json_file(tmp.str("tokenizer.json"), k);
    return message_of<InputError>([&] { Tokenizer::from_file(tmp.str("tokenizer.json")); });
  };
  EXPECT_THAT(attempt([](auto& k) { k["model"]["continuing_subword_prefix"] = "##"; }),
              ::testing::HasSubstr("continuing_subword_prefix"));
  EXPECT_THAT(attempt([](auto& k) { k["model"]["type"] = "WordPiece"; }), ::testing::HasSubstr("model.type"));
  EXPECT_THAT(attempt([](auto& k) { k["pre_tokenizer"] = {{"type", "Metaspace"}}; }),
              ::testing::HasSubstr("a ByteLevel decoder needs a ByteLevel pre_tokenizer"));
  EXPECT_THAT(attempt([](auto& k) { k["normalizer"] = {{"type", "Lowercase"}}; }),
              ::testing::HasSubstr("normalizer type 'Lowercase'"));
  EXPECT_THAT(attempt([](auto& k) { k["decoder"] = {{"type", "Metaspace"}}; }), ::testing::HasSubstr("decoder must be ByteLevel"));
  EXPECT_THAT(attempt([](auto& k) {
                k["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
              }),
              ::testing::HasSubstr("does not compile"));
  EXPECT_THAT(attempt([](auto& k) { k["model"]["merges"].push_back({"zzz_not", "in_vocab"}); }),
              ::testing::HasSubstr("missing from the vocabulary"));
  EXPECT_THAT(attempt([](auto& k) { k["pre_tokenizer"] = {{"type", "Sequence"}}; }),
              ::testing::HasSubstr("malformed tokenizer.json"));
  EXPECT_THAT(attempt([](auto& k) { k["added_tokens"][0]["id"] = -5; }), ::testing::HasSubstr("has id -5"));
  // A stray huge id used to allocate the dense id → token table (2^26: 2.4 GB; 2^31: a bare bad_alloc).
  for (const int64_t id : {int64_t{1} << 26, int64_t{1} << 31})
    EXPECT_THAT(attempt([id](auto& k) { k["added_tokens"][0]["id"] = id; }),
                ::testing::HasSubstr("token id " + std::to_string(id) + " is far beyond the"));
  // The post-processor may only add tokens the vocabulary has.
  EXPECT_THAT(attempt([](auto& k) {
                k["post_processor"] = {{"type", "TemplateProcessing"},
                                       {"single", {{{"SpecialToken", {{"id", "<x>"}, {"type_id", 0}}}},
                                                   {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                                       {"special_tokens", {{"<x>", {{"id", "<x>"}, {"ids", {70000}}, {"tokens", {"<x>"}}}}}}};
              }),
              ::testing::HasSubstr("post_processor template adds token id 70000, which is not in the vocabulary"));
}

// SentencePiece-style BPE (Llama 2 normalizers, or a Metaspace pre-tokenizer), with <0xXX> byte fallback for
// characters the vocabulary lacks and the Replace/ByteFallback/Fuse/Strip decoder: ids and text equal HF
// tokenizers' on every case (tools/fixtures/make_spm_fixtures.py).
TEST(Tokenizer, SentencePieceStyleBpeMatchesHuggingFace) {
  const auto all = io::read_json_file(test::fixtures_dir() + "/tokenizers/spm_cases.json");
  ASSERT_EQ(all.size(), 2u);
  for (const auto& [style, v] : all.items()) {
    test::TempDir tmp;
    io::write_json_file(tmp.str("tokenizer.json"), v["tokenizer"]);
    const Tokenizer tok = Tokenizer::from_file(tmp.str("tokenizer.json"));
    int fallback = 0;
    for (const auto& c : v["cases"]) {
      const std::string text = c["text"];
      const auto ids = tok.encode(text, false);
      EXPECT_EQ(ids, c["ids"].get<std::vector<int64_t>>()) << style << ": " << text;
      EXPECT_EQ(tok.decode(ids), c["decoded"].get<std::string>()) << style << ": " << text;
      for (int64_t id : ids) fallback += tok.id_to_token(id).starts_with("<0x");
    }
    EXPECT_GT(fallback, 0) << style << ": the cases exercise byte fallback";
  }
}

TEST(Tokenizer, AnExponentiallyBacktrackingSplitPatternIsANamedErrorNotAHang) {
  // (\w|\w)+\d on 40 letters backtracks 2^40 times: it never ended under a 10^12 budget.
  test::TempDir tmp;
  auto j = io::read_json_file(dir("gpt2") + "/tokenizer.json");
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"}, {"pattern", {{"Regex", "(\\w|\\w)+\\d"}}}, {"behavior", "Isolated"}, {"invert", false}},
                          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  io::write_json_file(tmp.str("tokenizer.json"), j);
  const Tokenizer tok = Tokenizer::from_file(tmp.str("tokenizer.json"));
  const std::string msg = message_of<InputError>([&] { tok.encode(std::string(40, 'a')); });
  EXPECT_THAT(msg, ::testing::HasSubstr("tokenizer.json"));
  EXPECT_THAT(msg, ::testing::HasSubstr("backtracks exponentially"));
  // Linear patterns keep working on long runs (a 1 MB run of one letter needs more than Oniguruma's 10^7).
  const Tokenizer gpt2 = Tokenizer::from_file(dir("gpt2") + "/tokenizer.json");
  EXPECT_FALSE(gpt2.encode(std::string(1 << 20, 'a')).empty());
}

std::string utf8proc_nf(const std::string& s, bool compat) {  // the reference: utf8proc's own NFC / NFKC
  utf8proc_uint8_t* dst = nullptr;
  const auto opts = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | (compat ? UTF8PROC_COMPAT : 0));
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()), &dst, opts);
  EXPECT_GE(n, 0);
  std::string out(reinterpret_cast<char*>(dst), static_cast<size_t>(std::max<utf8proc_ssize_t>(n, 0)));
  std::free(dst);
  return out;
}

TEST(Utf8, NormalizationMatchesUtf8procAndRunsOfMarksAreNotQuadratic) {
  // Hangul, compatibility ligatures, precomposed and decomposed letters, marks of several classes out of order.
  const std::vector<std::string> pool = {"a", "e", "A", "\u0301", "\u0316", "\u0327", "\u0308", "\u0345", "\u05B0",
                                         "\u1100", "\u1161", "\u11A8", "\uAC00", "\uFB01", "\u00C5", "\u212B",
                                         "\u1E9B", "\u0323", "\u0F73", "\u3000", "\uFF21", "\u2460", " "};
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    for (int k = static_cast<int>(rng() % 12); k >= 0; --k) s += pool[rng() % pool.size()];
    for (const bool compat : {false, true}) EXPECT_EQ(unicode_normalize(s, compat), utf8proc_nf(s, compat)) << s;
  }
  // Runs of marks of two classes: the same as utf8proc at 10 KB; at 1 MB an exchange sort does ~10^11 swaps
  // (minutes), a sort per run takes a fraction of a second.
  auto run_of_marks = [](int pairs) {
    std::string run = "a";
    for (int i = 0; i < pairs; ++i) run += "\u0301\u0316";
    return run;
  };
  EXPECT_EQ(unicode_normalize(run_of_marks(2500), false), utf8proc_nf(run_of_marks(2500), false));
  const std::string run = run_of_marks(250000), nfc = unicode_normalize(run, false);
  // a + acute composes (the class-220 marks between them do not block it), then 250 000 below, 249 999 above.
  EXPECT_EQ(nfc.size(), run.size() - 1);
  EXPECT_EQ(nfc.substr(0, 4), "\u00E1\u0316");
  EXPECT_EQ(nfc.substr(nfc.size() - 4), "\u0301\u0301");
  EXPECT_EQ(nfc.find("\u0316\u0301"), 2 + 2 * 249999u);
}

TEST(Utf8, LossyDecodingReplacesMaximalSubparts) {
  EXPECT_EQ(utf8_lossy("a\xff" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(utf8_lossy("\xe6\x97"), "\xEF\xBF\xBD");                          // truncated: one replacement
  EXPECT_EQ(utf8_lossy("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: three
  EXPECT_EQ(utf8_lossy("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");
  EXPECT_EQ(find_invalid_utf8("ok"), std::nullopt);
  EXPECT_EQ(find_invalid_utf8("ok\xc0\xaf"), 2u);  // overlong
}

}  // namespace
}  // namespace hps::text

// Tokenizer parity with HF `tokenizers` on three trained byte-level BPE tokenizers (GPT-2, Llama-3 and
// Qwen2 styles; tests/fixtures/tokenizers/cases.json), plus robustness: invalid UTF-8, 1 MB runs, lossy
// decoding of invalid bytes, and rejection of unsupported tokenizer.json features.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <zlib.h>

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
  EXPECT_THAT(attempt([](auto& k) { k["model"]["byte_fallback"] = true; }), ::testing::HasSubstr("byte_fallback"));
  EXPECT_THAT(attempt([](auto& k) { k["model"]["type"] = "WordPiece"; }), ::testing::HasSubstr("model.type"));
  EXPECT_THAT(attempt([](auto& k) { k["pre_tokenizer"] = {{"type", "Metaspace"}}; }), ::testing::HasSubstr("Metaspace"));
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

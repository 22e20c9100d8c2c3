// Dataset readers: every format (HH-RLHF, PKU, ranked, messages, TRL standard and prompt-completion), the
// HH-RLHF prompt split (the shared file's two irregular records included), and every bad-record rule in both
// on_bad_record modes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "data/dataset.hpp"
#include "io/atomic_file.hpp"
#include "test_util.hpp"

namespace hps::data {
namespace {

using test::message_of;
using test::TempDir;

struct File {
  TempDir dir;
  std::string path;
  explicit File(const std::string& content, const std::string& name = "d.jsonl") : path(dir.str(name)) {
    std::ofstream(path) << content;
  }
};

std::string error_of(const std::string& content, DatasetOptions opt = {}) {
  File f(content);
  return message_of<InputError>([&] { read_dataset(f.path, opt); });
}

TEST(Dataset, SharedHhRlhfFileSplitsEveryRecordAndReportsTheIrregularOnes) {
  const std::string path = test::shared_file("data/hh-rlhf-harmless-base-test-1800.jsonl.gz");
  HPS_SHARED_FILE_OR_SKIP(path);
  // Four pairs prefer an empty answer: bad records by default (an error names the first one)…
  EXPECT_THAT(message_of<InputError>([&] { read_dataset(path); }),
              ::testing::HasSubstr("hh-rlhf-harmless-base-test-1800.jsonl.gz:87: field 'chosen': empty response"));
  DatasetOptions skip;
  skip.on_bad_record = OnBadRecord::skip;
  Dataset s = read_dataset(path, skip);
  EXPECT_EQ(s.records.size(), 1796u);
  std::vector<int64_t> skipped;
  for (const auto& k : s.skipped) skipped.push_back(k.line);
  EXPECT_EQ(skipped, (std::vector<int64_t>{87, 517, 926, 1104}));
  // …kept when asked.
  DatasetOptions keep;
  keep.allow_empty_responses = true;
  Dataset d = read_dataset(path, keep);
  EXPECT_EQ(d.format, Format::hh_rlhf);
  EXPECT_EQ(d.records.size(), 1800u);
  EXPECT_TRUE(d.skipped.empty());
  std::vector<int64_t> noted;
  for (const auto& r : d.records) {
    EXPECT_TRUE(r.prompt_text.ends_with("\n\nAssistant:")) << r.line;
    ASSERT_EQ(r.responses.size(), 2u);
    if (!r.note.empty()) noted.push_back(r.line);
  }
  EXPECT_EQ(noted, (std::vector<int64_t>{1255, 1689}));  // the two whose last turns differ in structure
}

TEST(Dataset, HhSplitRuleAndFallback) {
  auto s = split_hh_pair("\n\nHuman: hi\n\nAssistant: A", "\n\nHuman: hi\n\nAssistant: B");
  EXPECT_EQ(s.prompt, "\n\nHuman: hi\n\nAssistant:");
  EXPECT_EQ(s.chosen, " A");
  EXPECT_EQ(s.rejected, " B");
  EXPECT_TRUE(s.note.empty());
  // The chosen response itself contains "\n\nAssistant:": fall back to the common prefix.
  s = split_hh_pair("\n\nHuman: hi\n\nAssistant: A  Human: more?\n\nAssistant: yes", "\n\nHuman: hi\n\nAssistant: B");
  EXPECT_EQ(s.prompt, "\n\nHuman: hi\n\nAssistant:");
  EXPECT_EQ(s.chosen, " A  Human: more?\n\nAssistant: yes");
  EXPECT_FALSE(s.note.empty());
  EXPECT_THAT(message_of<InputError>([] { split_hh_pair("no turns", "at all"); }),
              ::testing::HasSubstr("not an HH-RLHF pair"));
}

const std::string kPku =
    R"({"prompt": "q", "response_0": "a0", "response_1": "a1", "better_response_id": 1, "safer_response_id": 0,)"
    R"( "is_response_0_safe": true, "is_response_1_safe": false})";

TEST(Dataset, PkuRanksByHelpfulnessOrSafety) {
  File f(kPku + "\n");
  Dataset d = read_dataset(f.path);
  EXPECT_EQ(d.format, Format::pku);
  EXPECT_EQ(d.records[0].responses, (std::vector<std::string>{"a1", "a0"}));
  EXPECT_EQ(d.records[0].prompt_messages[0].content, "q");
  DatasetOptions safe;
  safe.pku_ranking = PkuRanking::safe;
  EXPECT_EQ(read_dataset(f.path, safe).records[0].responses, (std::vector<std::string>{"a0", "a1"}));
  EXPECT_THAT(error_of(R"({"prompt": "q", "response_0": "a", "response_1": "b", "better_response_id": 2})"),
              ::testing::HasSubstr("'better_response_id': expected 0 or 1, found 2"));
}

TEST(Dataset, RankedListsWithManyResponses) {
  std::string resp, rew;
  for (int k = 0; k < 120; ++k) resp += (k ? "," : "") + std::string("\"r") + std::to_string(k) + "\"", rew += (k ? "," : "") + std::to_string(k * 0.5);
  File f("{\"prompt\": \"p\", \"responses\": [" + resp + "], \"rewards\": [" + rew + "]}\n" +
         R"({"prompt": [{"role": "user", "content": "hi"}], "responses": ["x", "y"]})" + "\n");
  Dataset d = read_dataset(f.path);
  EXPECT_EQ(d.format, Format::ranked);
  EXPECT_EQ(d.records[0].responses.size(), 120u);
  EXPECT_EQ(d.records[0].rewards[119], 59.5);
  EXPECT_TRUE(d.records[1].rewards.empty());
  EXPECT_THAT(error_of(R"({"prompt": "p", "responses": ["a", "b"], "rewards": [1]})"),
              ::testing::HasSubstr("'rewards': expected 2 numbers (one per response), found 1"));
  // JSON has no NaN/inf literals; an overflowing number is rejected by the parser with the line.
  EXPECT_THAT(error_of("\n" R"({"prompt": "p", "responses": ["a", "b"], "rewards": [1, 1e999]})"),
              ::testing::AllOf(::testing::HasSubstr("d.jsonl:2: invalid JSON"), ::testing::HasSubstr("overflow")));
  EXPECT_THAT(error_of(R"({"prompt": "p", "responses": ["a", "b"], "rewards": [1, "2"]})"),
              ::testing::HasSubstr("'rewards'[1]: expected a number"));
}

TEST(Dataset, ChatMessages) {
  File f(R"({"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "A"}],)"
         R"( "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "B"}]})" "\n");
  Dataset d = read_dataset(f.path);
  EXPECT_EQ(d.format, Format::messages);
  EXPECT_EQ(d.records[0].prompt_messages.size(), 1u);
  EXPECT_EQ(d.records[0].responses, (std::vector<std::string>{"A", "B"}));
  EXPECT_THAT(error_of(R"({"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "A"}],)"
                       R"( "rejected": [{"role": "user", "content": "yo"}, {"role": "assistant", "content": "B"}]})"),
              ::testing::HasSubstr("messages before the final response differ"));
  File sft(R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "A"}]})" "\n");
  DatasetOptions one;
  one.min_responses = 1;
  EXPECT_EQ(read_dataset(sft.path, one).records[0].responses[0], "A");
  EXPECT_THAT(message_of<InputError>([&] { read_dataset(sft.path); }),
              ::testing::HasSubstr("has 1 response(s); at least 2 needed"));
}

// TRL's formats (https://huggingface.co/docs/trl/dataset_formats): standard preference with an explicit or an
// implicit prompt, prompt-completion as text or messages; auto-detection says why it chose each.
TEST(Dataset, TrlStandardPreferenceAndPromptCompletion) {
  File explicit_prompt(R"({"prompt": "The sky is", "chosen": " blue.", "rejected": " green."})" "\n");
  Dataset d = read_dataset(explicit_prompt.path);
  EXPECT_EQ(d.format, Format::text_pair);
  EXPECT_THAT(d.detected_because, ::testing::HasSubstr("'prompt' and a text 'chosen' (TRL standard)"));
  EXPECT_EQ(d.records[0].prompt_text, "The sky is");  // verbatim: TRL applies no chat template to standard data
  EXPECT_TRUE(d.records[0].prompt_messages.empty());
  EXPECT_EQ(d.records[0].responses, (std::vector<std::string>{" blue.", " green."}));
  // Implicit prompt: TRL's extract_prompt; its outputs on these cases are fixtures (tools/fixtures/make_trl_fixtures.py).
  const auto cases = io::read_json_file(test::fixtures_dir() + "/data/trl_extract_prompt.json");
  ASSERT_GE(cases.size(), 4u);
  for (const auto& c : cases) {
    File f(nlohmann::json{{"chosen", c["chosen"]}, {"rejected", c["rejected"]}}.dump() + "\n");
    const Dataset t = read_dataset(f.path);
    EXPECT_EQ(t.format, Format::text_pair);
    EXPECT_EQ(t.records[0].prompt_text, c["expected"]["prompt"].get<std::string>()) << c.dump();
    EXPECT_EQ(t.records[0].responses, (std::vector<std::string>{c["expected"]["chosen"], c["expected"]["rejected"]}))
        << c.dump();
  }
  // An HH-RLHF transcript stays hh_rlhf (its prompt ends at the last "\n\nAssistant:", not the last shared char).
  File hh(R"({"chosen": "\n\nHuman: hi\n\nAssistant: A b", "rejected": "\n\nHuman: hi\n\nAssistant: A c"})" "\n");
  EXPECT_EQ(read_dataset(hh.path).format, Format::hh_rlhf);
  DatasetOptions as_pair;
  as_pair.format = Format::text_pair;
  EXPECT_EQ(read_dataset(hh.path, as_pair).records[0].prompt_text, "\n\nHuman: hi\n\nAssistant: A");
  // Where TRL's loop would misbehave: named bad records.
  EXPECT_THAT(error_of(R"({"chosen": "same", "rejected": "same"})"), ::testing::HasSubstr("one is a prefix of the other"));
  EXPECT_THAT(error_of(R"({"chosen": "yes", "rejected": "no"})"), ::testing::HasSubstr("no shared prompt"));
  // Prompt-completion: text (verbatim) or messages (rendered with the chat format), one response.
  File pc(R"({"prompt": "The sky is", "completion": " blue."})" "\n"
          R"({"prompt": [{"role": "user", "content": "Sky?"}], "completion": [{"role": "assistant", "content": "Blue."}]})" "\n");
  DatasetOptions sft;
  sft.min_responses = 1;
  const Dataset p = read_dataset(pc.path, sft);
  EXPECT_EQ(p.format, Format::prompt_completion);
  ASSERT_EQ(p.records.size(), 2u);
  EXPECT_EQ(p.records[0].prompt_text, "The sky is");
  EXPECT_EQ(p.records[0].responses, std::vector<std::string>{" blue."});
  EXPECT_EQ(p.records[1].prompt_messages[0].content, "Sky?");
  EXPECT_EQ(p.records[1].responses, std::vector<std::string>{"Blue."});
  EXPECT_THAT(error_of(R"({"prompt": "p", "completion": [{"role": "user", "content": "x"}]})", sft),
              ::testing::HasSubstr("'completion': expected a text or one assistant message"));
  EXPECT_THAT(message_of<ConfigError>([] { parse_format("trl"); }), ::testing::HasSubstr("text_pair, prompt_completion"));
}

TEST(Dataset, EveryBadRecordNamesFileLineFieldAndReason) {
  const std::string good = R"({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"})";
  EXPECT_THAT(error_of(good + "\n{\"chosen\": \n"), ::testing::AllOf(::testing::HasSubstr("d.jsonl:2"),
                                                                     ::testing::HasSubstr("invalid JSON")));
  EXPECT_THAT(error_of(good + "\n" + R"({"chosen": 5, "rejected": "x"})"),
              ::testing::AllOf(::testing::HasSubstr("d.jsonl:2"), ::testing::HasSubstr("'chosen': expected a string")));
  EXPECT_THAT(error_of(good + "\n" + R"({"chosen": "\n\nHuman: a\n\nAssistant: b"})"),
              ::testing::HasSubstr("missing field 'rejected'"));
  EXPECT_THAT(error_of(R"({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant:  "})"),
              ::testing::HasSubstr("'rejected': empty response"));
  EXPECT_THAT(error_of(R"({"prompt": "p", "responses": ["only one"]})"), ::testing::HasSubstr("at least 2 needed"));
  EXPECT_THAT(error_of(R"({"unknown": 1})"), ::testing::HasSubstr("cannot detect the dataset format"));
  EXPECT_THAT(error_of("[1, 2]"), ::testing::HasSubstr("expected a JSON object"));
}

TEST(Dataset, SkipModeCountsAndReportsEverySkippedLine) {
  const std::string good = R"({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"})";
  File f(good + "\n" + R"({"chosen": 1, "rejected": 2})" + "\n\n" + good + "\n" + R"({"chosen": "x", "rejected": "y"})" + "\n");
  DatasetOptions skip;
  skip.on_bad_record = OnBadRecord::skip;
  Dataset d = read_dataset(f.path, skip);
  EXPECT_EQ(d.records.size(), 2u);
  ASSERT_EQ(d.skipped.size(), 2u);
  EXPECT_EQ(d.skipped[0].line, 2);
  EXPECT_EQ(d.skipped[1].line, 5);
  EXPECT_THAT(d.skipped[1].reason, ::testing::HasSubstr("not an HH-RLHF pair"));
  EXPECT_EQ(d.lines, 4);
  // Malformed JSON is not a record: even in skip mode it stops the read (the file is broken).
  File broken(good + "\n{oops\n");
  EXPECT_THAT(message_of<InputError>([&] { read_dataset(broken.path, skip); }), ::testing::HasSubstr("invalid JSON"));
}

TEST(Dataset, TruncatedGzipIsAnError) {
  TempDir dir;
  std::string content;
  for (int i = 0; i < 200; ++i) content += R"({"prompt": "p", "responses": ["a", "b"]})" "\n";
  gzFile gz = gzopen(dir.str("d.jsonl.gz").c_str(), "wb");
  gzwrite(gz, content.data(), static_cast<unsigned>(content.size()));
  gzclose(gz);
  EXPECT_EQ(read_dataset(dir.str("d.jsonl.gz")).records.size(), 200u);
  const std::string bytes = io::read_file(dir.str("d.jsonl.gz"));
  std::ofstream(dir.str("t.jsonl.gz"), std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  EXPECT_THAT(message_of<InputError>([&] { read_dataset(dir.str("t.jsonl.gz")); }),
              ::testing::HasSubstr("t.jsonl.gz"));
}

}  // namespace
}  // namespace hps::data

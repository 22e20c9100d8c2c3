// BLEU parity with NLTK (sentence) and sacrebleu (corpus, 13a) on tests/fixtures/bleu.json
// (tools/fixtures/make_bleu_fixtures.py): empty hypotheses, no overlap, unicode, entities, digits.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "eval/bleu.hpp"
#include "io/atomic_file.hpp"
#include "test_util.hpp"

namespace hps::eval {
namespace {

const nlohmann::json& fx() {
  static const nlohmann::json j = io::read_json_file(test::fixtures_dir() + "/bleu.json");
  return j;
}

TEST(Bleu, SentenceBleuMatchesNltk) {
  int n = 0;
  for (const auto& c : fx()["sentence"]) {
    EXPECT_NEAR(nltk_sentence_bleu(c["hyp"], c["ref"]), c["nltk_sentence_bleu"].get<double>(), 1e-6)
        << c["hyp"] << " | " << c["ref"];
    ++n;
  }
  EXPECT_GE(n, 40);
}

TEST(Bleu, Tokenize13aMatchesSacrebleu) {
  for (const auto& c : fx()["tokenize_13a"])
    EXPECT_EQ(tokenize_13a(c["text"]), c["tokens"].get<std::vector<std::string>>()) << c["text"];
}

TEST(Bleu, CorpusBleuMatchesSacrebleu) {
  const auto& s = fx()["sentence"];
  for (const auto& c : fx()["corpus"]) {
    std::vector<std::string> hyps, refs;
    for (int i = c["from"]; i < c["to"].get<int>(); ++i) hyps.push_back(s[i]["hyp"]), refs.push_back(s[i]["ref"]);
    const auto b = sacrebleu_corpus_bleu(hyps, refs);
    EXPECT_NEAR(b.score, c["sacrebleu"].get<double>(), 1e-6) << c["from"] << ".." << c["to"];
    EXPECT_EQ(b.sys_len, c["sys_len"].get<long>());
    EXPECT_EQ(b.ref_len, c["ref_len"].get<long>());
    for (size_t n = 0; n < 4; ++n) EXPECT_NEAR(b.precisions[n], c["precisions"][n].get<double>(), 1e-9);
  }
}

}  // namespace
}  // namespace hps::eval

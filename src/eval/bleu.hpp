// BLEU two ways, as the paper's evaluation and the field report it:
//   - sentence BLEU as NLTK's sentence_bleu([ref.split()], hyp.split()) with default weights (¼ each for
//     1–4-grams) and no smoothing (NLTK's method0: a zero n-gram precision becomes the smallest double);
//   - corpus BLEU as sacrebleu.corpus_bleu(hyps, [refs]) with its defaults: 13a tokenization, exp smoothing,
//     0–100 scale.
#pragma once

#include <string>
#include <vector>

namespace hps::eval {

double nltk_sentence_bleu(const std::string& hypothesis, const std::string& reference);

// mteval-v13a tokenization as sacrebleu's Tokenizer13a.
std::vector<std::string> tokenize_13a(const std::string& line);

struct CorpusBleu {
  double score = 0;                    // 0–100
  std::vector<double> precisions;      // 4 n-gram precisions, 0–100
  double bp = 0;
  long sys_len = 0, ref_len = 0;
};
CorpusBleu sacrebleu_corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references);

}  // namespace hps::eval

// BLEU: the input's lines alternate hypothesis, reference. Scores must come out finite and in range — up to
// rounding: sacrebleu itself scores 12 commas against 12 commas 100.00000000000004 (the fuzzer's first find
// here; hps matches it to the last bit, so the bound has a 1e-9 margin).
#include <cmath>
#include <vector>

#include "eval/bleu.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hps::fuzz::run_input([&] {
    std::vector<std::string> hyps, refs;
    std::string_view rest = hps::fuzz::as_text(data, size);
    for (bool hyp = true; !rest.empty(); hyp = !hyp) {
      auto [line, tail] = hps::fuzz::split_once(rest, '\n');
      (hyp ? hyps : refs).emplace_back(line);
      rest = tail;
    }
    refs.resize(hyps.size());
    for (size_t i = 0; i < hyps.size(); ++i) {
      const double s = hps::eval::nltk_sentence_bleu(hyps[i], refs[i]);
      if (!(s >= 0 && s <= 1 + 1e-12)) std::abort();
      (void)hps::eval::tokenize_13a(hyps[i]);
    }
    const auto c = hps::eval::sacrebleu_corpus_bleu(hyps, refs);
    if (!(c.score >= 0 && c.score <= 100 + 1e-9) || !std::isfinite(c.bp)) std::abort();
  });
}

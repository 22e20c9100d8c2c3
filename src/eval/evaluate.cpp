#include "eval/evaluate.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <sstream>

#include "core/error.hpp"
#include "data/batching.hpp"
#include "data/dataset.hpp"
#include "eval/bleu.hpp"
#include "eval/metrics.hpp"
#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"
#include "model/load.hpp"
#include "model/lora.hpp"
#include "model/score_records.hpp"
#include "text/chat.hpp"
#include "text/text_setup.hpp"
#include "text/tokenizer.hpp"

namespace hps::eval {

using nlohmann::json;

namespace {

struct Scored {
  int64_t source_line = 0;
  json prompt;
  std::vector<std::string> responses;
  std::vector<double> rewards;
};

std::vector<Scored> read_scored(const std::string& path) {
  std::vector<Scored> out;
  io::for_each_jsonl(path, [&](int64_t, const json& j) {
    if (!j.contains("responses") || !j.contains("rewards"))
      throw InputError("expected scored generations with \"responses\" and \"rewards\" (run hps score first)");
    Scored s;
    s.source_line = j.value("source_line", static_cast<int64_t>(out.size() + 1));
    s.prompt = j.value("prompt", json());
    s.responses = j["responses"].get<std::vector<std::string>>();
    s.rewards = j["rewards"].get<std::vector<double>>();
    if (s.responses.size() != s.rewards.size() || s.responses.empty())
      throw InputError("\"rewards\" must give one number per response (and there must be responses)");
    out.push_back(std::move(s));
  });
  return out;
}

size_t best_of(const std::vector<double>& r) { return static_cast<size_t>(std::max_element(r.begin(), r.end()) - r.begin()); }

}  // namespace

data::Encoder eval_encoder(const text::Tokenizer& tok, const text::ChatTemplate& chat, int64_t max_prompt_length) {
  return data::Encoder(tok, chat, {max_prompt_length, 2 * max_prompt_length, true});
}

json run_eval(const EvalJob& job, std::ostream& log) {
  json res;
  const auto gens = read_scored(job.generations);
  std::vector<std::vector<double>> rw;
  for (const auto& g : gens) rw.push_back(g.rewards);
  const auto rs = reward_stats(rw);
  res["reward"] = {{"mean", rs.mean}, {"top1", rs.top1}, {"prompts", rs.prompts}, {"samples", rs.samples}};
  res["name"] = job.name;
  std::vector<std::pair<std::string, std::vector<double>>> series;
  std::vector<double> all;
  for (const auto& r : rw) all.insert(all.end(), r.begin(), r.end());
  series.emplace_back(job.name, all);
  res["reward_samples"] = all;  // for combined reports

  if (job.oracle) {
    // The exact reward of every sample: mean, best of N per prompt, harmful and exact shares.
    std::vector<std::vector<double>> ro;
    std::vector<double> flat;
    int64_t harmful = 0, exact = 0;
    for (const auto& g : gens) {
      ro.emplace_back();
      for (const auto& y : g.responses) {
        const OracleVerdict v = job.oracle(g.prompt, y);
        ro.back().push_back(v.reward), flat.push_back(v.reward);
        harmful += v.harmful, exact += v.exact;
      }
    }
    const auto os = reward_stats(ro);
    const double n = static_cast<double>(std::max<size_t>(1, flat.size()));
    res["oracle"] = {{"mean", os.mean}, {"top1", os.top1}, {"harmful_rate", static_cast<double>(harmful) / n},
                     {"exact_rate", static_cast<double>(exact) / n}, {"samples", flat.size()}};
    res["oracle_samples"] = flat;
  }

  if (!job.baseline.empty()) {
    const auto base = read_scored(job.baseline);
    std::map<int64_t, const Scored*> by_line;
    for (const auto& b : base) by_line[b.source_line] = &b;
    std::vector<double> a, b;
    std::vector<double> ball;
    for (const auto& g : gens) {
      auto it = by_line.find(g.source_line);
      if (it == by_line.end()) continue;
      a.push_back(*std::max_element(g.rewards.begin(), g.rewards.end()));
      b.push_back(*std::max_element(it->second->rewards.begin(), it->second->rewards.end()));
    }
    for (const auto& x : base) ball.insert(ball.end(), x.rewards.begin(), x.rewards.end());
    if (a.size() != gens.size())
      log << "win rate: " << gens.size() - a.size() << " prompts have no baseline generation and are left out\n";
    const auto w = win_rate(a, b, job.tie_band, 1000, 0);
    res["win_rate"] = {{"against", job.baseline_name}, {"win", w.win}, {"tie", w.tie}, {"lose", w.lose},
                       {"win_ci95", {w.win_lo, w.win_hi}}, {"prompts", w.prompts}, {"tie_band", job.tie_band}};
    const auto bs = reward_stats([&] {
      std::vector<std::vector<double>> v;
      for (const auto& x : base) v.push_back(x.rewards);
      return v;
    }());
    res["baseline_reward"] = {{"mean", bs.mean}, {"top1", bs.top1}};
    series.emplace_back(job.baseline_name, ball);
  }

  if (!job.test.empty()) {
    data::DatasetOptions opt;
    opt.allow_empty_responses = true;
    opt.min_responses = 1;
    const auto test = data::read_dataset(job.test, opt);
    std::map<int64_t, const data::PreferenceRecord*> by_line;
    for (const auto& r : test.records) by_line[r.line] = &r;
    std::vector<std::string> hyps, refs;
    double sent = 0;
    for (const auto& g : gens) {
      auto it = by_line.find(g.source_line);
      if (it == by_line.end()) continue;
      const auto& rec = *it->second;
      const size_t ref_k = rec.rewards.empty() ? 0 : best_of(rec.rewards);
      hyps.push_back(g.responses[best_of(g.rewards)]);
      refs.push_back(rec.responses[ref_k]);
      sent += nltk_sentence_bleu(hyps.back(), refs.back());
    }
    if (!hyps.empty()) {
      const auto cb = sacrebleu_corpus_bleu(hyps, refs);
      res["bleu"] = {{"nltk_sentence_mean", sent / static_cast<double>(hyps.size())}, {"sacrebleu_corpus", cb.score},
                     {"pairs", hyps.size()}};
    }
    if (!job.policy.empty() && !job.reference.empty()) {
      // Models: margins on the test pairs (best vs worst response) and KL on the winning generations.
      const model::LoadOptions lo{at::Device(job.device), std::nullopt};
      const model::Decoder pol = model::load_policy(job.policy, job.adapter, lo);
      const model::Decoder ref = model::load_model(job.reference, lo);
      const auto [tok, chat] = text::load_text_setup(job.tokenizer.empty() ? job.policy : job.tokenizer, job.chat_format);
      const data::Encoder enc = eval_encoder(tok, chat, job.max_prompt_length);
      // Table 1's margins on two pairs per test prompt: best vs worst, and best vs the hardest negative (the
      // highest-rewarded dispreferred response: Theorem 3's quantity).
      auto margins_on = [&](const data::Select& select) -> std::optional<json> {
        std::vector<data::TokenizedRecord> pairs;
        for (const auto& r : test.records) {
          if (r.responses.size() < 2) continue;
          const auto pair = select(r);
          // Equal rewards carry no preference (issue 12's tie rule): such a record has no margin to measure.
          if (!r.rewards.empty() && r.rewards[static_cast<size_t>(pair[0])] == r.rewards[static_cast<size_t>(pair[1])])
            continue;
          auto ex = enc.encode(r, pair);
          pairs.push_back({r.line, std::move(ex.prompt), std::move(ex.responses)});
        }
        if (pairs.empty()) return std::nullopt;
        const auto p = model::score_records(pol, pairs, 8), q = model::score_records(ref, pairs, 8);
        std::vector<double> pw, rwv, pl, rl;
        std::vector<int64_t> lw, ll;
        for (size_t i = 0; i < pairs.size(); ++i) {
          pw.push_back(p[i].logp[0]), rwv.push_back(q[i].logp[0]), lw.push_back(p[i].tokens[0]);
          pl.push_back(p[i].logp[1]), rl.push_back(q[i].logp[1]), ll.push_back(p[i].tokens[1]);
        }
        const auto m = reward_margins(pw, rwv, lw, pl, rl, ll);
        return json{{"rm_dpo", m.rm_dpo}, {"rm_rdpo", m.rm_rdpo}, {"accuracy", m.accuracy}, {"pairs", m.pairs}};
      };
      if (auto m = margins_on(data::select_best_worst)) res["margins"] = *m;
      if (auto m = margins_on(data::select_best_hardest)) res["margins_hardest"] = *m;
      // KL(π ‖ π_ref) estimated on the winning generated response of each prompt: log π(y) − log π_ref(y).
      std::vector<data::TokenizedRecord> wins;
      for (const auto& g : gens) {
        auto it = by_line.find(g.source_line);
        if (it == by_line.end()) continue;
        data::PreferenceRecord r = *it->second;
        r.responses = {g.responses[best_of(g.rewards)]};
        r.rewards.clear();
        auto ex = enc.encode(r, {0});
        wins.push_back({r.line, std::move(ex.prompt), std::move(ex.responses)});
      }
      if (!wins.empty()) {
        const auto p = model::score_records(pol, wins, 8), q = model::score_records(ref, wins, 8);
        double kl = 0;
        for (size_t i = 0; i < wins.size(); ++i) kl += p[i].logp[0] - q[i].logp[0];
        res["kl_winning"] = {{"mean", kl / static_cast<double>(wins.size())}, {"prompts", wins.size()}};
      }
    }
  }

  if (job.extra.is_object()) res.update(job.extra);
  io::make_dirs(job.out);
  io::write_json_file(job.out + "/results.json", res);
  std::ostringstream md;
  md << results_table({{job.name, res}}) << "\n![reward distribution](rewards.svg)\n";
  io::write_file_atomic(job.out + "/report.md", [&](std::ostream& o) { o << md.str(); });
  const std::string svg = reward_histogram_svg(series);
  io::write_file_atomic(job.out + "/rewards.svg", [&](std::ostream& o) { o << svg; });
  log << md.str();
  return res;
}

}  // namespace hps::eval

#include "eval/evaluate.hpp"

#include <algorithm>
#include <map>
#include <sstream>

#include "core/error.hpp"
#include "eval/bleu.hpp"
#include "eval/metrics.hpp"
#include "eval/report.hpp"
#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"

namespace hps::eval {

using nlohmann::json;

namespace {

std::vector<Scored> read_scored(const std::string& path) {
  std::vector<Scored> out;
  io::for_each_jsonl(path, [&](int64_t, const json& j) {
    if (!j.contains("responses") || !j.contains("rewards"))
      throw InputError("expected scored generations with \"responses\" and \"rewards\" (run hps score first)");
    Scored s;
    try {
      s.source_line = j.value("source_line", static_cast<int64_t>(out.size() + 1));
      s.prompt = j.value("prompt", json());
      s.responses = j["responses"].get<std::vector<std::string>>();
      s.rewards = j["rewards"].get<std::vector<double>>();
    } catch (const json::exception& e) {  // a wrong type: named with the file and line by for_each_jsonl
      throw InputError("expected \"responses\": [text], \"rewards\": [number], \"source_line\": integer (" +
                       std::string(e.what()) + ")");
    }
    if (s.responses.size() != s.rewards.size() || s.responses.empty())
      throw InputError("\"rewards\" must give one number per response (and there must be responses)");
    out.push_back(std::move(s));
  });
  return out;
}

size_t best_of(const std::vector<double>& r) { return static_cast<size_t>(std::max_element(r.begin(), r.end()) - r.begin()); }

std::vector<std::vector<double>> rewards_of(const std::vector<Scored>& v) {
  std::vector<std::vector<double>> out;
  for (const auto& g : v) out.push_back(g.rewards);
  return out;
}

std::vector<double> flat(const std::vector<std::vector<double>>& v) {
  std::vector<double> out;
  for (const auto& r : v) out.insert(out.end(), r.begin(), r.end());
  return out;
}

// The test records by source line.
std::map<int64_t, const data::PreferenceRecord*> by_line(const data::Dataset& test) {
  std::map<int64_t, const data::PreferenceRecord*> out;
  for (const auto& r : test.records) out[r.line] = &r;
  return out;
}

// The exact reward of every sample: mean, best of N per prompt, harmful and exact shares.
void add_oracle(const EvalJob& job, const EvalData& d, EvalResults& res) {
  std::vector<std::vector<double>> ro;
  int64_t harmful = 0, exact = 0;
  for (const auto& g : d.generations) {
    ro.emplace_back();
    for (const auto& y : g.responses) {
      const OracleVerdict v = job.oracle(g.prompt, y);
      ro.back().push_back(v.reward);
      harmful += v.harmful, exact += v.exact;
    }
  }
  const auto os = reward_stats(ro);
  res.oracle_samples = flat(ro);
  const double n = static_cast<double>(std::max<size_t>(1, res.oracle_samples.size()));
  res.oracle = OracleSummary{os.mean, os.top1, static_cast<double>(harmful) / n, static_cast<double>(exact) / n,
                             static_cast<int64_t>(res.oracle_samples.size())};
}

// Best-of-N reward per prompt against the baseline's on the same prompt.
void add_win_rate(const EvalJob& job, const EvalData& d, EvalResults& res, std::ostream& log) {
  std::map<int64_t, const Scored*> base;
  for (const auto& b : d.baseline) base[b.source_line] = &b;
  std::vector<double> a, b;
  for (const auto& g : d.generations) {
    auto it = base.find(g.source_line);
    if (it == base.end()) continue;
    a.push_back(g.rewards[best_of(g.rewards)]);
    b.push_back(it->second->rewards[best_of(it->second->rewards)]);
  }
  if (a.size() != d.generations.size())
    log << "win rate: " << d.generations.size() - a.size() << " prompts have no baseline generation and are left out\n";
  res.win_rate = WinRateResult{job.baseline_name, win_rate(a, b, job.tie_band, 1000, 0), job.tie_band};
  const auto bs = reward_stats(rewards_of(d.baseline));
  res.baseline_reward = BaselineReward{bs.mean, bs.top1};
}

void add_bleu(const EvalJob& job, const EvalData& d, EvalResults& res, std::ostream& log) {
  const auto test = by_line(*d.test);
  std::vector<std::string> hyps, refs;
  double sent = 0;
  for (const auto& g : d.generations) {
    auto it = test.find(g.source_line);
    if (it == test.end()) continue;
    const auto& rec = *it->second;
    hyps.push_back(g.responses[best_of(g.rewards)]);
    refs.push_back(rec.responses[rec.rewards.empty() ? 0 : best_of(rec.rewards)]);
    sent += nltk_sentence_bleu(hyps.back(), refs.back());
  }
  if (hyps.empty()) {  // said, never a silently missing column
    log << "warning: no generation of " << job.generations << " comes from a line of --test " << job.test
        << " (generations name their source line): BLEU is not computed\n";
    return;
  }
  res.bleu = Bleu{sent / static_cast<double>(hyps.size()), sacrebleu_corpus_bleu(hyps, refs).score,
                  static_cast<int64_t>(hyps.size())};
}

// Table 1's margins from the pairs' log-probs: response 0 preferred, response 1 dispreferred.
std::optional<Margins> margins_of(const PolicyAndReference& s) {
  if (s.policy.empty()) return std::nullopt;
  if (s.policy.size() != s.reference.size()) throw InternalError("margins: policy and reference scores differ in count");
  std::vector<double> pw, rw, pl, rl;
  std::vector<int64_t> lw, ll;
  for (size_t i = 0; i < s.policy.size(); ++i) {
    pw.push_back(s.policy[i].logp[0]), rw.push_back(s.reference[i].logp[0]), lw.push_back(s.policy[i].tokens[0]);
    pl.push_back(s.policy[i].logp[1]), rl.push_back(s.reference[i].logp[1]), ll.push_back(s.policy[i].tokens[1]);
  }
  return reward_margins(pw, rw, lw, pl, rl, ll);
}

}  // namespace

EvalData read_eval_data(const EvalJob& job) {
  EvalData d;
  d.generations = read_scored(job.generations);
  if (!job.baseline.empty()) d.baseline = read_scored(job.baseline);
  if (!job.test.empty()) {
    data::DatasetOptions opt;
    opt.allow_empty_responses = true;
    opt.min_responses = 1;
    d.test = data::read_dataset(job.test, opt);
  }
  return d;
}

data::Encoder eval_encoder(const text::Tokenizer& tok, const text::ChatTemplate& chat, int64_t max_prompt_length) {
  return data::Encoder(tok, chat, {max_prompt_length, 2 * max_prompt_length, true});
}

ModelRequests model_requests(const EvalData& d, const data::Encoder& enc) {
  ModelRequests req;
  if (!d.test) return req;
  for (auto [select, out] : {std::pair{&data::select_best_worst, &req.worst}, {&data::select_best_hardest, &req.hardest}})
    for (const auto& r : d.test->records) {
      if (r.responses.size() < 2) continue;
      const auto pair = select(r);
      // Equal rewards carry no preference (issue 12's tie rule): such a record has no margin to measure.
      if (!r.rewards.empty() && r.rewards[static_cast<size_t>(pair[0])] == r.rewards[static_cast<size_t>(pair[1])]) continue;
      auto ex = enc.encode(r, pair);
      out->push_back({r.line, std::move(ex.prompt), std::move(ex.responses)});
    }
  const auto test = by_line(*d.test);
  for (const auto& g : d.generations) {
    auto it = test.find(g.source_line);
    if (it == test.end()) continue;
    data::PreferenceRecord r = *it->second;
    r.responses = {g.responses[best_of(g.rewards)]};
    r.rewards.clear();
    auto ex = enc.encode(r, {0});
    req.winners.push_back({r.line, std::move(ex.prompt), std::move(ex.responses)});
  }
  return req;
}

EvalResults evaluate(const EvalJob& job, const EvalData& d, const ModelScores* scores, std::ostream& log) {
  EvalResults res;
  res.name = job.name;
  const auto rw = rewards_of(d.generations);
  res.reward = reward_stats(rw);
  res.reward_samples = flat(rw);
  if (job.oracle) add_oracle(job, d, res);
  if (!job.baseline.empty()) add_win_rate(job, d, res, log);
  if (d.test) add_bleu(job, d, res, log);
  if (scores) {
    res.margins = margins_of(scores->worst);
    res.margins_hardest = margins_of(scores->hardest);
    // KL(π ‖ π_ref) estimated on the winning generated response of each prompt: log π(y) − log π_ref(y).
    const auto& w = scores->winners;
    if (!w.policy.empty()) {
      double kl = 0;
      for (size_t i = 0; i < w.policy.size(); ++i) kl += w.policy[i].logp[0] - w.reference[i].logp[0];
      res.kl_winning = Kl{kl / static_cast<double>(w.policy.size()), static_cast<int64_t>(w.policy.size())};
    }
  }
  res.training = job.training;
  return res;
}

void write_eval(const EvalJob& job, const EvalData& d, const EvalResults& res, std::ostream& log) {
  io::make_dirs(job.out);
  io::write_json_file(job.out + "/results.json", to_json(res));
  std::ostringstream md;
  md << results_table({res}) << "\n![reward distribution](rewards.svg)\n";
  io::write_file_atomic(job.out + "/report.md", [&](std::ostream& o) { o << md.str(); });
  std::vector<std::pair<std::string, std::vector<double>>> series{{job.name, res.reward_samples}};
  if (!d.baseline.empty()) series.emplace_back(job.baseline_name, flat(rewards_of(d.baseline)));
  const std::string svg = reward_histogram_svg(series);
  io::write_file_atomic(job.out + "/rewards.svg", [&](std::ostream& o) { o << svg; });
  log << md.str();
}

}  // namespace hps::eval

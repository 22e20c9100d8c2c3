#include "eval/evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
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

std::string fmt(double v, int digits = 3);

std::string table_header() {
  return "| method | reward (top-1 of N) | reward (mean) | BLEU (NLTK) | BLEU (sacrebleu) | RM_DPO | RM_R-DPO | KL | win / tie / lose |\n"
         "|---|---|---|---|---|---|---|---|---|\n";
}

std::string table_row(const std::string& name, const json& res) {
  auto get = [&](const char* a, const char* b, int d) {
    return res.contains(a) && res[a].contains(b) ? fmt(res[a][b].get<double>(), d) : std::string("–");
  };
  std::ostringstream md;
  md << "| " << name << " | " << get("reward", "top1", 3) << " | " << get("reward", "mean", 3) << " | "
     << get("bleu", "nltk_sentence_mean", 4) << " | " << get("bleu", "sacrebleu_corpus", 2) << " | "
     << get("margins", "rm_dpo", 3) << " | " << get("margins", "rm_rdpo", 3) << " | " << get("kl_winning", "mean", 3) << " | ";
  if (res.contains("win_rate")) {
    const auto& w = res["win_rate"];
    md << fmt(100 * w["win"].get<double>(), 1) << "% / " << fmt(100 * w["tie"].get<double>(), 1) << "% / "
       << fmt(100 * w["lose"].get<double>(), 1) << "% vs " << w["against"].get<std::string>() << " (win 95% CI "
       << fmt(100 * w["win_ci95"][0].get<double>(), 1) << "–" << fmt(100 * w["win_ci95"][1].get<double>(), 1) << "%)";
  } else {
    md << "–";
  }
  md << " |\n";
  return md.str();
}

size_t best_of(const std::vector<double>& r) { return static_cast<size_t>(std::max_element(r.begin(), r.end()) - r.begin()); }

std::string fmt(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

}  // namespace

std::string bar_chart_svg(const std::string& title, const std::vector<std::string>& methods,
                          const std::vector<std::pair<std::string, std::vector<double>>>& groups) {
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
  const int W = 640, H = 360, L = 60, R = 20, T = 40, B = 50;
  double lo = 0, hi = 0;
  for (const auto& [g, v] : groups)
    for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  if (hi <= lo) hi = lo + 1;
  auto y = [&](double v) { return T + (hi - v) / (hi - lo) * (H - T - B); };
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n"
    << "<rect width='100%' height='100%' fill='white'/>\n"
    << "<text x='" << W / 2 << "' y='20' text-anchor='middle' font-size='14'>" << title << "</text>\n"
    << "<line x1='" << L << "' y1='" << y(0) << "' x2='" << W - R << "' y2='" << y(0) << "' stroke='black'/>\n";
  const double gw = static_cast<double>(W - L - R) / std::max<size_t>(1, groups.size());
  const double bw = gw * 0.8 / std::max<size_t>(1, methods.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    s << "<text x='" << L + gw * (g + 0.5) << "' y='" << H - B + 30 << "' text-anchor='middle'>" << groups[g].first << "</text>\n";
    for (size_t m = 0; m < methods.size() && m < groups[g].second.size(); ++m) {
      const double v = groups[g].second[m], x = L + gw * g + gw * 0.1 + bw * m;
      s << "<rect x='" << x << "' y='" << std::min(y(v), y(0)) << "' width='" << bw * 0.9 << "' height='"
        << std::abs(y(v) - y(0)) << "' fill='" << colors[m % 6] << "'/>\n"
        << "<text x='" << x + bw * 0.45 << "' y='" << (v >= 0 ? y(v) - 4 : y(v) + 14) << "' text-anchor='middle'>"
        << fmt(v, 2) << "</text>\n";
    }
  }
  for (size_t m = 0; m < methods.size(); ++m)
    s << "<rect x='" << W - R - 140 << "' y='" << T + 18 * m << "' width='12' height='12' fill='" << colors[m % 6] << "'/>\n"
      << "<text x='" << W - R - 122 << "' y='" << T + 10 + 18 * m << "'>" << methods[m] << "</text>\n";
  s << "</svg>\n";
  return s.str();
}

void combine_reports(const std::vector<std::pair<std::string, std::string>>& runs, const std::string& out, std::ostream& log) {
  std::ostringstream md;
  md << table_header();
  std::vector<std::pair<std::string, std::vector<double>>> series;
  std::vector<std::string> methods;
  std::vector<double> rm_dpo, rm_rdpo;
  for (const auto& [name, dir] : runs) {
    const json r = io::read_json_file(dir + "/results.json");
    md << table_row(name, r);
    series.emplace_back(name, r.value("reward_samples", std::vector<double>{}));
    methods.push_back(name);
    rm_dpo.push_back(r.contains("margins") ? r["margins"]["rm_dpo"].get<double>() : 0.0);
    rm_rdpo.push_back(r.contains("margins") ? r["margins"]["rm_rdpo"].get<double>() : 0.0);
  }
  md << "\n![reward distribution](rewards.svg)\n\n![reward margins](margins.svg)\n";
  io::make_dirs(out);
  io::write_file_atomic(out + "/report.md", [&](std::ostream& o) { o << md.str(); });
  const std::string hist = reward_histogram_svg(series);
  io::write_file_atomic(out + "/rewards.svg", [&](std::ostream& o) { o << hist; });
  const std::string bars = bar_chart_svg("Reward margins on the test pairs (Table 1)", methods,
                                         {{"RM_DPO", rm_dpo}, {"RM_R-DPO", rm_rdpo}});
  io::write_file_atomic(out + "/margins.svg", [&](std::ostream& o) { o << bars; });
  log << md.str();
}

std::string reward_histogram_svg(const std::vector<std::pair<std::string, std::vector<double>>>& series) {
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& [name, v] : series)
    for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi <= lo) hi = lo + 1;
  const int bins = 30, W = 640, H = 360, L = 50, R = 20, T = 30, B = 40;
  std::vector<std::vector<double>> hist;
  double ymax = 0;
  for (const auto& [name, v] : series) {
    std::vector<double> h(bins, 0.0);
    for (double x : v) h[std::min(bins - 1, static_cast<int>((x - lo) / (hi - lo) * bins))] += 1.0 / std::max<size_t>(1, v.size());
    ymax = std::max(ymax, *std::max_element(h.begin(), h.end()));
    hist.push_back(h);
  }
  if (ymax <= 0) ymax = 1;
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n"
    << "<rect width='100%' height='100%' fill='white'/>\n"
    << "<text x='" << W / 2 << "' y='18' text-anchor='middle' font-size='14'>Reward of generated responses (share per bin)</text>\n"
    << "<line x1='" << L << "' y1='" << H - B << "' x2='" << W - R << "' y2='" << H - B << "' stroke='black'/>\n"
    << "<line x1='" << L << "' y1='" << T << "' x2='" << L << "' y2='" << H - B << "' stroke='black'/>\n";
  for (int t = 0; t <= 4; ++t) {
    const double x = lo + (hi - lo) * t / 4.0;
    const double px = L + (W - L - R) * t / 4.0;
    s << "<text x='" << px << "' y='" << H - B + 16 << "' text-anchor='middle'>" << fmt(x, 2) << "</text>\n";
  }
  const double bw = static_cast<double>(W - L - R) / bins;
  for (size_t k = 0; k < series.size(); ++k) {
    for (int i = 0; i < bins; ++i) {
      const double h = hist[k][static_cast<size_t>(i)] / ymax * (H - T - B);
      if (h <= 0) continue;
      s << "<rect x='" << L + i * bw << "' y='" << H - B - h << "' width='" << bw << "' height='" << h << "' fill='"
        << colors[k % 4] << "' fill-opacity='0.45' stroke='" << colors[k % 4] << "'/>\n";
    }
    // Mean marker and legend.
    double mean = 0;
    for (double x : series[k].second) mean += x / std::max<size_t>(1, series[k].second.size());
    const double mx = L + (mean - lo) / (hi - lo) * (W - L - R);
    s << "<line x1='" << mx << "' y1='" << T << "' x2='" << mx << "' y2='" << H - B << "' stroke='" << colors[k % 4]
      << "' stroke-width='2' stroke-dasharray='4 3'/>\n"
      << "<rect x='" << W - R - 170 << "' y='" << T + 6 + 18 * k << "' width='12' height='12' fill='" << colors[k % 4] << "'/>\n"
      << "<text x='" << W - R - 152 << "' y='" << T + 16 + 18 * k << "'>" << series[k].first
      << (series[k].second.empty() ? std::string(" (no reward samples)") : " (mean " + fmt(mean, 2) + ")") << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
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
      model::Decoder pol = model::load_model(job.policy, lo);
      if (!job.adapter.empty()) model::load_lora(pol, job.adapter);
      const model::Decoder ref = model::load_model(job.reference, lo);
      const auto tok = text::Tokenizer::from_dir(job.tokenizer.empty() ? job.policy : job.tokenizer);
      const text::ChatTemplate chat = text::choose_chat_template(tok.config().chat_template, job.chat_format);
      const data::Encoder enc(tok, chat, {1024, 2048, true});
      std::vector<data::TokenizedRecord> pairs;
      for (const auto& r : test.records) {
        if (r.responses.size() < 2) continue;
        auto ex = enc.encode(r, data::select_best_worst(r));
        pairs.push_back({r.line, std::move(ex.prompt), std::move(ex.responses)});
      }
      if (!pairs.empty()) {
        const auto p = model::score_records(pol, pairs, 8), q = model::score_records(ref, pairs, 8);
        std::vector<double> pw, rwv, pl, rl;
        std::vector<int64_t> lw, ll;
        for (size_t i = 0; i < pairs.size(); ++i) {
          pw.push_back(p[i].logp[0]), rwv.push_back(q[i].logp[0]), lw.push_back(p[i].tokens[0]);
          pl.push_back(p[i].logp[1]), rl.push_back(q[i].logp[1]), ll.push_back(p[i].tokens[1]);
        }
        const auto m = reward_margins(pw, rwv, lw, pl, rl, ll);
        res["margins"] = {{"rm_dpo", m.rm_dpo}, {"rm_rdpo", m.rm_rdpo}, {"accuracy", m.accuracy}, {"pairs", m.pairs}};
      }
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

  io::make_dirs(job.out);
  io::write_json_file(job.out + "/results.json", res);
  std::ostringstream md;
  md << table_header() << table_row(job.name, res) << "\n![reward distribution](rewards.svg)\n";
  io::write_file_atomic(job.out + "/report.md", [&](std::ostream& o) { o << md.str(); });
  const std::string svg = reward_histogram_svg(series);
  io::write_file_atomic(job.out + "/rewards.svg", [&](std::ostream& o) { o << svg; });
  log << md.str();
  return res;
}

}  // namespace hps::eval

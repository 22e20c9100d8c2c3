#include "eval/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>
#include <sstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace hps::eval {

namespace {

std::string fmt(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

using Get = std::function<std::optional<double>(const EvalResults&)>;

// One table column: a field of EvalResults (absent when the results lack its part).
struct Column {
  const char* header;
  Get get;
  int digits;
};

// Field `field` of the optional part `part`, times `scale`.
template <typename Part, typename T>
Get field(std::optional<Part> EvalResults::*part, T Part::*field, double scale = 1.0) {
  return [=](const EvalResults& r) -> std::optional<double> {
    const auto& p = r.*part;
    if (!p) return std::nullopt;
    return static_cast<double>((*p).*field) * scale;
  };
}

// ... of a part every result has.
template <typename Part, typename T>
Get field(Part EvalResults::*part, T Part::*field) {
  return [=](const EvalResults& r) -> std::optional<double> { return static_cast<double>((r.*part).*field); };
}

Get win_share() {
  return [](const EvalResults& r) -> std::optional<double> {
    if (!r.win_rate) return std::nullopt;
    return 100 * r.win_rate->rate.win;
  };
}

Get forwarded_per_prompt() {
  return [](const EvalResults& r) -> std::optional<double> {
    if (!r.training) return std::nullopt;
    return r.training->responses_per_prompt;
  };
}

const std::vector<Column>& columns() {
  using R = EvalResults;
  static const std::vector<Column> cols{
      {"r* (mean)", field(&R::oracle, &OracleSummary::mean), 3},
      {"r* (top-1 of N)", field(&R::oracle, &OracleSummary::top1), 3},
      {"harmful %", field(&R::oracle, &OracleSummary::harmful_rate, 100), 1},
      {"exact %", field(&R::oracle, &OracleSummary::exact_rate, 100), 1},
      {"reward (top-1 of N)", field(&R::reward, &RewardStats::top1), 3},
      {"reward (mean)", field(&R::reward, &RewardStats::mean), 3},
      {"BLEU (NLTK, 0–1)", field(&R::bleu, &Bleu::nltk_sentence_mean), 4},
      {"BLEU (sacreBLEU, 0–100)", field(&R::bleu, &Bleu::sacrebleu_corpus), 2},
      {"RM_DPO", field(&R::margins, &Margins::rm_dpo), 3},
      {"RM_R-DPO", field(&R::margins, &Margins::rm_rdpo), 3},
      {"RM_DPO (hardest)", field(&R::margins_hardest, &Margins::rm_dpo), 3},
      {"KL", field(&R::kl_winning, &Kl::mean), 3},
      {"win %", win_share(), 1},
      {"fwd / prompt", forwarded_per_prompt(), 2},
      {"train s", field(&R::training, &TrainingCost::seconds), 1},
  };
  return cols;
}

// The columns at least one result has.
std::vector<const Column*> present(const std::vector<const EvalResults*>& results) {
  std::vector<const Column*> out;
  for (const auto& c : columns())
    if (std::any_of(results.begin(), results.end(), [&](const EvalResults* r) { return c.get(*r).has_value(); }))
      out.push_back(&c);
  return out;
}

std::string header_row(const std::vector<const Column*>& cols) {
  std::string h = "| method |", rule = "|---|";
  for (const auto* c : cols) h += std::string(" ") + c->header + " |", rule += "---|";
  return h + "\n" + rule + "\n";
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

double sd_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

// The margin bars per method: each margin the results have, averaged over a method's results (its seeds).
std::vector<std::pair<std::string, std::vector<double>>> margin_groups(const std::vector<std::vector<const EvalResults*>>& per_method) {
  using R = EvalResults;
  const std::vector<std::pair<const char*, Get>> keys{{"RM_DPO", field(&R::margins, &Margins::rm_dpo)},
                                                     {"RM_R-DPO", field(&R::margins, &Margins::rm_rdpo)},
                                                     {"RM_DPO (hardest)", field(&R::margins_hardest, &Margins::rm_dpo)}};
  std::vector<std::pair<std::string, std::vector<double>>> groups;
  for (const auto& [name, get] : keys) {
    std::vector<double> means;
    bool any = false;
    for (const auto& rs : per_method) {
      std::vector<double> v;
      for (const EvalResults* r : rs)
        if (auto x = get(*r)) v.push_back(*x);
      any = any || !v.empty();
      means.push_back(mean_of(v));
    }
    if (any) groups.emplace_back(name, std::move(means));
  }
  return groups;
}

// margins.svg and (when there are oracle samples) oracle.svg, which it says it wrote.
bool write_plots(const std::string& out, const std::vector<std::string>& methods,
                 const std::vector<std::pair<std::string, std::vector<double>>>& margins,
                 const std::vector<std::pair<std::string, std::vector<double>>>& oracle) {
  const std::string bars = bar_chart_svg("Reward margins on the test pairs (Table 1)", methods, margins);
  io::write_file_atomic(out + "/margins.svg", [&](std::ostream& o) { o << bars; });
  const bool any = std::any_of(oracle.begin(), oracle.end(), [](const auto& s) { return !s.second.empty(); });
  if (!any) return false;
  const std::string hist = reward_histogram_svg(oracle, "Oracle reward r* of generated responses (share per bin)");
  io::write_file_atomic(out + "/oracle.svg", [&](std::ostream& o) { o << hist; });
  return true;
}

}  // namespace

std::string results_table(const std::vector<EvalResults>& rows) {
  std::vector<const EvalResults*> rs;
  for (const auto& r : rows) rs.push_back(&r);
  const auto cols = present(rs);
  std::ostringstream md;
  md << header_row(cols);
  for (const auto& r : rows) {
    md << "| " << r.name << " |";
    for (const auto* c : cols) {
      const auto v = c->get(r);
      md << " " << (v ? fmt(*v, c->digits) : std::string("–")) << " |";
    }
    md << "\n";
  }
  // The win rate's detail (tie / lose, bootstrap interval) below the table.
  for (const auto& r : rows)
    if (r.win_rate) {
      const auto& w = r.win_rate->rate;
      md << "\n" << r.name << " vs " << r.win_rate->against << ": win / tie / lose " << fmt(100 * w.win, 1) << "% / "
         << fmt(100 * w.tie, 1) << "% / " << fmt(100 * w.lose, 1) << "% (win 95% CI " << fmt(100 * w.win_lo, 1) << "–"
         << fmt(100 * w.win_hi, 1) << "%)";
    }
  md << "\n";
  return md.str();
}

namespace {

// The results in `dir` under the report's name for them.
EvalResults read_named(const NamedDir& run) {
  EvalResults r = read_results(run.second);
  r.name = run.first;
  return r;
}

}  // namespace

void combine_reports(const std::vector<NamedDir>& runs, const std::string& out, std::ostream& log) {
  std::vector<EvalResults> rows;
  std::vector<std::pair<std::string, std::vector<double>>> series, oracle;
  std::vector<std::string> methods;
  for (const auto& run : runs) {
    rows.push_back(read_named(run));
    series.emplace_back(run.first, rows.back().reward_samples);
    oracle.emplace_back(run.first, rows.back().oracle_samples);
    methods.push_back(run.first);
  }
  std::vector<std::vector<const EvalResults*>> per_method;
  for (const auto& row : rows) per_method.push_back({&row});
  std::string md = results_table(rows) + "\n![reward distribution](rewards.svg)\n\n![reward margins](margins.svg)\n";
  io::make_dirs(out);
  if (write_plots(out, methods, margin_groups(per_method), oracle)) md += "\n![oracle reward distribution](oracle.svg)\n";
  io::write_file_atomic(out + "/report.md", [&](std::ostream& o) { o << md; });
  const std::string hist = reward_histogram_svg(series);
  io::write_file_atomic(out + "/rewards.svg", [&](std::ostream& o) { o << hist; });
  log << md;
}

void aggregate_seed_reports(const std::vector<std::pair<std::string, std::vector<NamedDir>>>& seeds,
                            const std::string& out, std::ostream& log) {
  if (seeds.empty()) return;
  const auto& first = seeds.front().second;
  // results[m][s]: method m under seed s.
  std::vector<std::vector<EvalResults>> results(first.size());
  for (const auto& [label, runs] : seeds) {
    if (runs.size() != first.size()) throw InternalError("aggregate_seed_reports: the seeds list different methods");
    for (size_t m = 0; m < runs.size(); ++m) results[m].push_back(read_named({first[m].first, runs[m].second}));
  }
  std::vector<const EvalResults*> all;
  for (const auto& v : results)
    for (const auto& r : v) all.push_back(&r);
  const auto cols = present(all);
  std::ostringstream md;
  md << "Mean ± sd over " << seeds.size() << " seeds (";
  for (size_t s = 0; s < seeds.size(); ++s) md << (s ? ", " : "") << seeds[s].first;
  md << ").\n\n" << header_row(cols);
  std::vector<std::string> methods;
  std::vector<std::vector<const EvalResults*>> per_method;
  std::vector<std::pair<std::string, std::vector<double>>> oracle;
  for (size_t m = 0; m < first.size(); ++m) {
    methods.push_back(first[m].first);
    md << "| " << first[m].first << " |";
    for (const auto* c : cols) {
      std::vector<double> v;
      for (const auto& r : results[m])
        if (auto x = c->get(r)) v.push_back(*x);
      md << " " << (v.empty() ? std::string("–") : fmt(mean_of(v), c->digits) + " ± " + fmt(sd_of(v), c->digits)) << " |";
    }
    md << "\n";
    std::vector<double> pooled;
    per_method.emplace_back();
    for (const auto& r : results[m]) {
      per_method.back().push_back(&r);
      pooled.insert(pooled.end(), r.oracle_samples.begin(), r.oracle_samples.end());
    }
    oracle.emplace_back(first[m].first, std::move(pooled));
  }
  md << "\n![reward margins, mean over seeds](margins.svg)\n";
  io::make_dirs(out);
  if (write_plots(out, methods, margin_groups(per_method), oracle)) md << "\n![oracle reward, pooled over seeds](oracle.svg)\n";
  for (size_t s = 0; s < seeds.size(); ++s) {
    std::vector<EvalResults> rows;
    for (size_t m = 0; m < first.size(); ++m) rows.push_back(results[m][s]);
    md << "\n### " << seeds[s].first << "\n\n" << results_table(rows);
  }
  io::write_file_atomic(out + "/report.md", [&](std::ostream& o) { o << md.str(); });
  log << md.str();
}

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

std::string reward_histogram_svg(const std::vector<std::pair<std::string, std::vector<double>>>& series,
                                 const std::string& title) {
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
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
  ymax *= 1.4;  // headroom: the legend sits in the top right
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n"
    << "<rect width='100%' height='100%' fill='white'/>\n"
    << "<text x='" << W / 2 << "' y='18' text-anchor='middle' font-size='14'>" << title << "</text>\n"
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
        << colors[k % 6] << "' fill-opacity='0.45' stroke='" << colors[k % 6] << "'/>\n";
    }
    // Mean marker.
    s << "<line x1='" << L + (mean_of(series[k].second) - lo) / (hi - lo) * (W - L - R) << "' y1='" << T << "' x2='"
      << L + (mean_of(series[k].second) - lo) / (hi - lo) * (W - L - R) << "' y2='" << H - B << "' stroke='"
      << colors[k % 6] << "' stroke-width='2' stroke-dasharray='4 3'/>\n";
  }
  // The legend on a white panel, above the bars and markers.
  s << "<rect x='" << W - R - 176 << "' y='" << T + 2 << "' width='174' height='" << 18 * series.size() + 6
    << "' fill='white' fill-opacity='0.9'/>\n";
  for (size_t k = 0; k < series.size(); ++k)
    s << "<rect x='" << W - R - 170 << "' y='" << T + 6 + 18 * k << "' width='12' height='12' fill='" << colors[k % 6] << "'/>\n"
      << "<text x='" << W - R - 152 << "' y='" << T + 16 + 18 * k << "'>" << series[k].first
      << (series[k].second.empty() ? std::string(" (no reward samples)")
                                   : " (mean " + fmt(mean_of(series[k].second), 2) + ")")
      << "</text>\n";
  s << "</svg>\n";
  return s.str();
}

}  // namespace hps::eval

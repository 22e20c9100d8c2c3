#include "data/inspect.hpp"

#include <algorithm>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/batching.hpp"

namespace hps::data {

std::string prompt_text(const PreferenceRecord& r, const text::ChatTemplate& chat) {
  return r.prompt_messages.empty() ? r.prompt_text : text::render_prompt(chat, r.prompt_messages);
}

namespace {

Percentiles percentiles(std::vector<int64_t> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]; };
  p.p50 = at(0.5), p.p90 = at(0.9), p.p99 = at(0.99), p.max = v.back();
  return p;
}

}  // namespace

DatasetReport inspect_dataset(const Dataset& d, const text::Tokenizer* tok, const text::ChatTemplate& chat) {
  DatasetReport r;
  r.path = d.path;
  r.format = d.format;
  r.detected_because = d.detected_because;
  r.lines = d.lines;
  r.records = static_cast<int64_t>(d.records.size());
  r.skipped = d.skipped;
  double sum = 0;
  int64_t n = 0;
  std::vector<int64_t> plen, rlen;
  for (const auto& rec : d.records) {
    r.k_counts[static_cast<int64_t>(rec.responses.size())]++;
    if (!rec.note.empty()) r.notes.emplace_back(rec.line, rec.note);
    if (!rec.rewards.empty()) {
      ++r.with_rewards;
      const bool tied = rec.rewards.size() >= 2 &&
                        std::all_of(rec.rewards.begin(), rec.rewards.end(), [&](double v) { return v == rec.rewards[0]; });
      r.all_tied += tied ? 1 : 0;
      for (double v : rec.rewards) {
        r.reward_min = n ? std::min(r.reward_min, v) : v;
        r.reward_max = n ? std::max(r.reward_max, v) : v;
        sum += v, ++n;
      }
    }
    if (tok) {
      plen.push_back(static_cast<int64_t>(prompt_ids(rec, *tok, chat).size()));
      for (const auto& resp : rec.responses) rlen.push_back(static_cast<int64_t>(tok->encode(resp, false).size()));
    }
  }
  if (n) r.reward_mean = sum / static_cast<double>(n);
  const std::string eos = tok && tok->config().eos_token ? *tok->config().eos_token : "";
  r.chat_format = std::string(text::to_string(chat.format)) +
                  (chat.format == text::ChatFormat::jinja ? " (the tokenizer's own chat_template)" : "") +
                  ", end of turn " + nlohmann::json(text::response_suffix(chat, eos)).dump();
  if (!d.records.empty()) {
    const std::string p = prompt_text(d.records[0], chat);
    r.first_prompt = nlohmann::json(p.size() > 600 ? p.substr(0, 600) + "…" : p).dump();
  }
  if (tok) r.prompt_tokens = percentiles(plen), r.response_tokens = percentiles(rlen);
  return r;
}

void print_report(const DatasetReport& r, std::ostream& out) {
  auto row = [&](const std::string& k, const std::string& v) { out << std::left << std::setw(16) << k << v << "\n"; };
  row("file", r.path);
  row("format", std::string(to_string(r.format)) + (r.detected_because.empty() ? "" : " (auto: " + r.detected_because + ")"));
  row("records", std::to_string(r.records) + " of " + std::to_string(r.lines) + " lines (" +
                     std::to_string(r.skipped.size()) + " skipped)");
  std::string ks;
  for (const auto& [k, c] : r.k_counts) ks += (ks.empty() ? "" : ", ") + std::to_string(k) + " × " + std::to_string(c);
  row("responses (K)", ks.empty() ? "-" : ks);
  std::ostringstream rw;
  if (r.with_rewards)
    rw << r.with_rewards << " records; min " << r.reward_min << ", mean " << r.reward_mean << ", max " << r.reward_max;
  else
    rw << "none (order gives the preference)";
  row("rewards", rw.str());
  if (r.all_tied)
    row("all tied", std::to_string(r.all_tied) + " records give every response the same reward: no preference, "
                                                 "no loss term in training (loss.ties = exclude)");
  auto pct = [](const Percentiles& p) {
    return "p50 " + std::to_string(p.p50) + ", p90 " + std::to_string(p.p90) + ", p99 " + std::to_string(p.p99) +
           ", max " + std::to_string(p.max);
  };
  if (r.prompt_tokens) row("prompt tokens", pct(*r.prompt_tokens));
  if (r.response_tokens) row("response tokens", pct(*r.response_tokens));
  if (!r.chat_format.empty()) row("chat format", r.chat_format);
  if (!r.first_prompt.empty()) row("first prompt", r.first_prompt);
  for (const auto& [line, note] : r.notes) row("note", "line " + std::to_string(line) + ": " + note);
  if (r.skipped.empty()) row("problems", "none");
  for (const auto& s : r.skipped) row("problem", "line " + std::to_string(s.line) + ": " + s.reason);
}

}  // namespace hps::data

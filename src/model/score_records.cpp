#include "model/score_records.hpp"

#include <nlohmann/json.hpp>

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <functional>

#include "core/error.hpp"
#include "model/logprobs.hpp"

namespace hps::model {

namespace {

// Every (record, response) sequence cut into batches of about `batch_size`; calls on_batch(batch, slots)
// where slots[i] = (record, response) of row i. Padded: longest first, which keeps padding small. Packed:
// records in order and whole (a record's responses adjacent, so they share its prompt), a batch closed
// once it holds `batch_size` sequences.
void for_each_batch(const std::vector<data::TokenizedRecord>& records, int64_t batch_size, int64_t pad_id, Layout layout,
                    const std::function<void(const data::SequenceBatch&,
                                             const std::vector<std::pair<size_t, size_t>>&)>& on_batch) {
  struct Seq {
    size_t rec, k, len;
  };
  std::vector<Seq> seqs;
  std::vector<size_t> ends;  // where a batch may end: after each record (packed), after each sequence (padded)
  for (size_t r = 0; r < records.size(); ++r) {
    for (size_t k = 0; k < records[r].responses.size(); ++k) {
      seqs.push_back({r, k, records[r].prompt.size() + records[r].responses[k].size()});
      if (layout == Layout::padded) ends.push_back(seqs.size());
    }
    if (layout == Layout::packed && !records[r].responses.empty()) ends.push_back(seqs.size());
  }
  if (layout == Layout::padded)
    std::stable_sort(seqs.begin(), seqs.end(), [](const Seq& a, const Seq& b) { return a.len > b.len; });
  const size_t step = static_cast<size_t>(std::max<int64_t>(1, batch_size));
  for (size_t s = 0, i = 0; s < seqs.size();) {
    while (i + 1 < ends.size() && ends[i] - s < step) ++i;  // the first end with ≥ step sequences (or the last)
    const size_t e = ends[i++];
    std::vector<data::PromptResponse> batch;
    std::vector<std::pair<size_t, size_t>> slots;
    for (size_t j = s; j < e; ++j) {
      batch.push_back({&records[seqs[j].rec].prompt, &records[seqs[j].rec].responses[seqs[j].k]});
      slots.emplace_back(seqs[j].rec, seqs[j].k);
    }
    try {
      on_batch(data::pad_sequences(batch, pad_id), slots);
    } catch (Error& err) {  // a rule broken inside the forward (context length, token ids): which records
      std::string lines;
      for (size_t j = 0; j < slots.size() && j < 8; ++j)
        if (j == 0 || slots[j].first != slots[j - 1].first) lines += (lines.empty() ? "" : ", ") + std::to_string(records[slots[j].first].line);
      err.add_context("while scoring the records at lines " + lines + (slots.size() > 8 ? ", …" : ""));
      throw;
    }
    s = e;
  }
}

}  // namespace

std::vector<RecordLogprobs> score_records(const Decoder& d, const std::vector<data::TokenizedRecord>& records,
                                          int64_t batch_size, Layout layout) {
  std::vector<RecordLogprobs> out(records.size());
  for (size_t r = 0; r < records.size(); ++r) {
    out[r].logp.resize(records[r].responses.size());
    out[r].tokens.resize(records[r].responses.size());
  }
  c10::InferenceMode no_grad;
  const auto dev = d.device();
  for_each_batch(records, batch_size, d.config.pad_token_id.value_or(0), layout, [&](const auto& b, const auto& slots) {
    SeqLogprobs lp = sequence_logprobs(d, b.ids.to(dev), b.mask.to(dev), b.response_mask.to(dev), layout);
    const at::Tensor sum = lp.sum.to(at::kCPU, at::kDouble), cnt = lp.count.to(at::kCPU, at::kLong);
    for (size_t i = 0; i < slots.size(); ++i) {
      out[slots[i].first].logp[slots[i].second] = sum[static_cast<int64_t>(i)].item<double>();
      out[slots[i].first].tokens[slots[i].second] = cnt[static_cast<int64_t>(i)].item<int64_t>();
    }
  });
  return out;
}

std::vector<std::vector<double>> score_rewards(const Decoder& rm, const std::vector<data::TokenizedRecord>& records,
                                               int64_t batch_size, Layout layout) {
  std::vector<std::vector<double>> out(records.size());
  for (size_t r = 0; r < records.size(); ++r) out[r].resize(records[r].responses.size());
  c10::InferenceMode no_grad;
  const auto dev = rm.device();
  for_each_batch(records, batch_size, rm.config.pad_token_id.value_or(0), layout, [&](const auto& b, const auto& slots) {
    const at::Tensor sc =
        sequence_scores(rm, b.ids.to(dev), b.mask.to(dev), b.response_mask.to(dev), layout).select(1, 0).to(at::kCPU, at::kDouble);
    for (size_t i = 0; i < slots.size(); ++i) out[slots[i].first][slots[i].second] = sc[static_cast<int64_t>(i)].item<double>();
  });
  return out;
}

std::vector<RecordLogprobs> score_records_sharded(const Decoder& d, const std::vector<data::TokenizedRecord>& records,
                                                  int64_t batch_size, Layout layout, const dist::World& world) {
  if (!world.distributed()) return score_records(d, records, batch_size, layout);
  const auto n = static_cast<int64_t>(records.size()), r = world.rank(), S = world.size();
  const std::vector<data::TokenizedRecord> mine(records.begin() + r * n / S, records.begin() + (r + 1) * n / S);
  nlohmann::json part = nlohmann::json::array();  // [[logp…], [tokens…]] per record; doubles round-trip exactly
  if (!mine.empty())
    for (const auto& rec : score_records(d, mine, batch_size, layout)) part.push_back({rec.logp, rec.tokens});
  std::vector<RecordLogprobs> all;
  for (const std::string& text : world.gather(part.dump()))
    for (const auto& rec : nlohmann::json::parse(text))
      all.push_back({rec.at(0).get<std::vector<double>>(), rec.at(1).get<std::vector<int64_t>>()});
  return all;
}

}  // namespace hps::model

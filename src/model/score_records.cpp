#include "model/score_records.hpp"

#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "model/logprobs.hpp"

namespace hps::model {

std::vector<RecordLogprobs> score_records(const Decoder& d, const std::vector<data::TokenizedRecord>& records,
                                          int64_t batch_size) {
  struct Seq {
    size_t rec, k, len;
  };
  std::vector<Seq> seqs;
  std::vector<RecordLogprobs> out(records.size());
  for (size_t r = 0; r < records.size(); ++r) {
    out[r].logp.resize(records[r].responses.size());
    out[r].tokens.resize(records[r].responses.size());
    for (size_t k = 0; k < records[r].responses.size(); ++k)
      seqs.push_back({r, k, records[r].prompt.size() + records[r].responses[k].size()});
  }
  std::stable_sort(seqs.begin(), seqs.end(), [](const Seq& a, const Seq& b) { return a.len > b.len; });
  c10::InferenceMode no_grad;
  const size_t step = static_cast<size_t>(std::max<int64_t>(1, batch_size));
  for (size_t s = 0; s < seqs.size(); s += step) {
    const size_t e = std::min(seqs.size(), s + step);
    std::vector<data::PromptResponse> batch;
    for (size_t i = s; i < e; ++i) batch.push_back({&records[seqs[i].rec].prompt, &records[seqs[i].rec].responses[seqs[i].k]});
    auto b = data::pad_sequences(batch, d.config.pad_token_id.value_or(0));
    const auto dev = d.device();
    SeqLogprobs lp = sequence_logprobs(d, b.ids.to(dev), b.mask.to(dev), b.response_mask.to(dev));
    at::Tensor sum = lp.sum.to(at::kCPU, at::kDouble), cnt = lp.count.to(at::kCPU, at::kLong);
    for (size_t i = s; i < e; ++i) {
      out[seqs[i].rec].logp[seqs[i].k] = sum[static_cast<int64_t>(i - s)].item<double>();
      out[seqs[i].rec].tokens[seqs[i].k] = cnt[static_cast<int64_t>(i - s)].item<int64_t>();
    }
  }
  return out;
}

}  // namespace hps::model

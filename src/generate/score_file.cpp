#include "generate/score_file.hpp"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "data/dataset.hpp"
#include "data/batching.hpp"
#include "data/inspect.hpp"
#include "data/pretokenized.hpp"
#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"

namespace hps::generate {

namespace {

// Scores of every response of `records` (one vector per record), longest sequences first.
std::vector<std::vector<double>> score_records(const model::Decoder& rm, const std::vector<data::TokenizedRecord>& recs,
                                               int64_t batch_size) {
  struct Seq {
    size_t rec, k, len;
  };
  std::vector<Seq> seqs;
  std::vector<std::vector<double>> out(recs.size());
  for (size_t r = 0; r < recs.size(); ++r) {
    out[r].resize(recs[r].responses.size());
    for (size_t k = 0; k < recs[r].responses.size(); ++k)
      seqs.push_back({r, k, recs[r].prompt.size() + recs[r].responses[k].size()});
  }
  std::stable_sort(seqs.begin(), seqs.end(), [](const Seq& a, const Seq& b) { return a.len > b.len; });
  c10::InferenceMode no_grad;
  const int64_t pad = rm.config.pad_token_id.value_or(0);
  for (size_t s = 0; s < seqs.size(); s += static_cast<size_t>(batch_size)) {
    const size_t e = std::min(seqs.size(), s + static_cast<size_t>(batch_size));
    std::vector<data::PromptResponse> batch;
    for (size_t i = s; i < e; ++i) batch.push_back({&recs[seqs[i].rec].prompt, &recs[seqs[i].rec].responses[seqs[i].k]});
    auto b = data::pad_sequences(batch, pad);
    const at::Tensor sc = rm.scores(b.ids.to(rm.device()), b.mask.to(rm.device())).select(1, 0).to(at::kCPU, at::kDouble);
    for (size_t i = s; i < e; ++i) out[seqs[i].rec][seqs[i].k] = sc[static_cast<int64_t>(i - s)].item<double>();
  }
  return out;
}

}  // namespace

int64_t score_file(const model::Decoder& rm, const text::Tokenizer& tok, const text::ChatTemplate& chat,
                   const ScoreJob& job, std::ostream& log) {
  if (rm.config.head != model::Head::sequence_classification)
    throw InputError(rm.config.architecture + " is not a reward model (*ForSequenceClassification)");
  if (tok.vocab_size() > rm.config.vocab_size)
    throw InputError("the reward model's tokenizer has more tokens than its vocabulary (" + std::to_string(tok.vocab_size()) +
                     " > " + std::to_string(rm.config.vocab_size) + ")");
  // Raw lines are kept to rewrite each record with only `rewards` changed.
  std::vector<nlohmann::json> raw;
  io::for_each_jsonl(job.data, [&](int64_t, const nlohmann::json& j) { raw.push_back(j); });
  data::DatasetOptions opt;
  opt.format = data::Format::ranked;
  opt.min_responses = 1;
  opt.allow_empty_responses = true;
  const data::Dataset ds = data::read_dataset(job.data, opt);
  if (ds.records.size() != raw.size()) throw InternalError("score: record count changed while reading");
  // Progress of an interrupted run: OUT.partial holds the scored prefix, whole lines only.
  const std::string partial = job.out + ".partial";
  int64_t done = 0;
  if (io::file_exists(partial)) {
    const std::string text = io::read_file(partial);
    const size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    io::write_file_atomic(partial, [&](std::ostream& o) { o.write(text.data(), static_cast<std::streamsize>(keep)); });
    done = std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(keep), '\n');
    log << "resuming: " << done << " of " << raw.size() << " prompts already scored in " << partial << "\n";
  }
  const data::Encoder enc(tok, chat, {job.max_length / 2, job.max_length, true});
  std::ofstream out(partial, std::ios::app);
  const auto total = static_cast<int64_t>(raw.size());
  int64_t scored = 0;
  for (int64_t s = done; s < total; s += job.chunk_prompts) {
    const int64_t e = std::min(total, s + job.chunk_prompts);
    // Tokenized exactly as `hps train-rm` encodes its training data (chat format, end-of-turn suffix).
    data::Dataset chunk;
    chunk.records.assign(ds.records.begin() + s, ds.records.begin() + e);
    auto recs = data::tokenize_dataset(chunk, enc);
    for (auto& t : recs)
      for (auto& ids : t.responses)
        if (ids.empty()) ids.push_back(tok.eos_id().value_or(rm.config.pad_token_id.value_or(0)));  // an empty answer
    const auto scores = score_records(rm, recs, job.batch_size);
    std::string lines;
    for (int64_t i = s; i < e; ++i) {
      nlohmann::json j = raw[static_cast<size_t>(i)];
      j["rewards"] = scores[static_cast<size_t>(i - s)];
      lines += j.dump() + "\n";
    }
    out << lines << std::flush;
    scored += e - s;
    log << "scored " << e << "/" << total << " prompts\n";
  }
  out.close();
  io::copy_file(partial, job.out);  // atomic replace of the output (the input itself when in place)
  std::remove(partial.c_str());
  return scored;
}

}  // namespace hps::generate

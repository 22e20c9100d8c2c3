#include "generate/score_file.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "data/dataset.hpp"
#include "data/batching.hpp"
#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"
#include "model/score_records.hpp"

namespace hps::generate {

data::Encoder score_encoder(const text::Tokenizer& tok, const text::ChatTemplate& chat, const ScoreJob& job) {
  return data::Encoder(tok, chat, {job.max_length / 2, job.max_length, true});
}

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
  io::JsonlAppender out(partial, log);
  const int64_t done = out.lines();
  if (done > 0) log << "resuming: " << done << " of " << raw.size() << " prompts already scored in " << partial << "\n";
  const data::Encoder enc = score_encoder(tok, chat, job);
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
    const auto scores = model::score_rewards(rm, recs, job.batch_size);
    std::string lines;
    for (int64_t i = s; i < e; ++i) {
      nlohmann::json j = raw[static_cast<size_t>(i)];
      j["rewards"] = scores[static_cast<size_t>(i - s)];
      lines += j.dump() + "\n";
    }
    out.append(lines);
    scored += e - s;
    log << "scored " << e << "/" << total << " prompts\n";
  }
  out.close();
  io::copy_file(partial, job.out);  // atomic replace of the output (the input itself when in place)
  std::remove(partial.c_str());
  return scored;
}

}  // namespace hps::generate

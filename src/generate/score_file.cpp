#include "generate/score_file.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "data/dataset.hpp"
#include "data/batching.hpp"
#include "generate/shards.hpp"
#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"
#include "model/score_records.hpp"

namespace hps::generate {

data::Encoder score_encoder(const text::Tokenizer& tok, const text::ChatTemplate& chat, const ScoreJob& job) {
  return data::Encoder(tok, chat, {job.max_length / 2, job.max_length, true});
}

namespace {

// Scores records [r.begin, r.end) into `path`, chunk by chunk (chunks of the whole input: a range of whole
// chunks scores what one process scores), resuming after the complete lines already there. Returns the
// records scored in this call; `complete` says whether `path` now holds the whole range.
int64_t score_range(const model::Decoder& rm, const text::Tokenizer& tok, const data::Encoder& enc, const ScoreJob& job,
                    const std::vector<nlohmann::json>& raw, const data::Dataset& ds, Range r, const std::string& path,
                    std::ostream& log, bool& complete) {
  io::JsonlAppender out(path, log);
  const int64_t done = out.lines(), total = r.end - r.begin;
  if (done > total) throw InputError(path + ": holds " + std::to_string(done) + " scored prompts, more than the " +
                                     std::to_string(total) + " it was given (another input or process count?)");
  if (done > 0) log << "resuming: " << done << " of " << total << " prompts already scored in " << path << "\n";
  int64_t scored = 0;
  for (int64_t s = r.begin + done; s < r.end; s += job.chunk_prompts) {
    const int64_t e = std::min(r.end, s + job.chunk_prompts);
    // Tokenized exactly as `hps train-rm` encodes its training data (chat format, end-of-turn suffix).
    data::Dataset chunk;
    chunk.records.assign(ds.records.begin() + s, ds.records.begin() + e);
    auto recs = data::tokenize_dataset(chunk, enc);
    for (auto& t : recs)
      for (auto& ids : t.responses)
        if (ids.empty()) ids.push_back(tok.eos_id().value_or(rm.config.pad_token_id.value_or(0)));  // an empty answer
    const auto scores = model::score_rewards(rm, recs, job.batch_size, job.layout);
    std::string lines;
    for (int64_t i = s; i < e; ++i) {
      for (const double v : scores[static_cast<size_t>(i - s)])  // JSON would write NaN as null
        if (!std::isfinite(v))
          throw NumericError(job.data + ":" + std::to_string(ds.records[static_cast<size_t>(i)].line) +
                             ": the reward model scored a response " + std::to_string(v) +
                             " (NaN or inf in its weights?); nothing of this chunk was written");
      nlohmann::json j = raw[static_cast<size_t>(i)];
      j["rewards"] = scores[static_cast<size_t>(i - s)];
      lines += j.dump() + "\n";
    }
    out.append(lines);
    scored += e - s;
    log << "scored " << e - r.begin << "/" << total << " prompts\n";
  }
  complete = done + scored == total;
  out.close();
  return scored;
}

}  // namespace

int64_t score_file(const model::Decoder& rm, const text::Tokenizer& tok, const text::ChatTemplate& chat,
                   const ScoreJob& job, std::ostream& log, const dist::World& world) {
  if (job.chunk_prompts <= 0)
    throw ConfigError("score: chunk_prompts (--chunk-prompts) must be > 0, found " + std::to_string(job.chunk_prompts));
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
  const data::Encoder enc = score_encoder(tok, chat, job);
  const auto total = static_cast<int64_t>(raw.size());
  bool complete = false;
  if (world.distributed()) {  // whole chunks per rank into OUT.part-*, joined by rank 0 (atomic: OUT may be the input)
    const Range r = shard_range(total, job.chunk_prompts, world.rank(), world.size());
    const int64_t n = score_range(rm, tok, enc, job, raw, ds, r, part_path(job.out, world.rank(), world.size()), log, complete);
    join_parts(job.out, complete, world, log);
    return n;
  }
  // Progress of an interrupted run: OUT.partial holds the scored prefix, whole lines only.
  const std::string partial = job.out + ".partial";
  const int64_t n = score_range(rm, tok, enc, job, raw, ds, {0, total}, partial, log, complete);
  io::copy_file(partial, job.out);  // atomic replace of the output (the input itself when in place)
  std::remove(partial.c_str());
  return n;
}

}  // namespace hps::generate

#include "generate/generate_file.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/seed.hpp"
#include "core/error.hpp"
#include "data/batching.hpp"
#include "generate/engine.hpp"
#include "generate/shards.hpp"
#include "io/atomic_file.hpp"
#include "io/jsonl.hpp"

namespace hps::generate {

namespace {

std::string cut_at_stop(std::string s, const std::vector<std::string>& stop) {
  size_t cut = s.size();
  for (const auto& st : stop)
    if (!st.empty()) cut = std::min(cut, s.find(st));
  return s.substr(0, cut);
}

}  // namespace

std::vector<int64_t> generation_prompt_ids(const data::PreferenceRecord& r, const text::Tokenizer& tok,
                                           const text::ChatTemplate& chat, const GenerateJob& job) {
  return data::prompt_ids(r, tok, chat, job.max_prompt_length);
}

std::vector<int64_t> stop_token_ids(const text::Tokenizer& tok, const text::ChatTemplate& chat,
                                    const std::vector<int64_t>& model_eos) {
  std::vector<int64_t> ids;
  auto add = [&](int64_t id) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  };
  if (auto e = tok.eos_id()) add(*e);
  for (int64_t e : model_eos) add(e);
  const std::string eot = text::response_suffix(chat, tok.config().eos_token.value_or(""));
  if (!eot.empty())
    if (const auto t = tok.encode(eot, false); t.size() == 1) add(t[0]);
  return ids;
}

namespace {

constexpr int64_t kChunkBatches = 4;  // prompts per engine call and per append: 4 · batch_prompts

// Generates records [r.begin, r.end) of `ds` into `path`, resuming after the complete lines already there;
// `complete` says whether `path` now holds the whole range.
// Each sample draws from the stream of (sampling.seed, its record's index in the whole input, its index), so
// any range, batch size or resume point writes what one uninterrupted process writes.
int64_t generate_range(const model::Decoder& d, const text::Tokenizer& tok, const text::ChatTemplate& chat,
                       const GenerateJob& job, const data::Dataset& ds, Range r, const std::string& path, std::ostream& log,
                       bool& complete) {
  io::JsonlAppender out(path, log);  // keeps the complete lines of an interrupted run
  const int64_t done = out.lines(), total = r.end - r.begin;
  if (done > total) throw InputError(path + ": holds " + std::to_string(done) + " prompts, more than the " +
                                     std::to_string(total) + " it was given (another input or process count?)");
  if (done > 0) log << "resuming: " << done << " of " << total << " prompts already in " << path << "\n";
  const std::vector<int64_t> eos = stop_token_ids(tok, chat, d.config.eos_token_ids);
  const int64_t pad = tok.pad_id().value_or(d.config.pad_token_id.value_or(0));
  int64_t written = 0;
  // The engine gets a batch of prompts at a time (continuous batching: a chunk of kChunkBatches batches,
  // the rows of ended samples refilled from its later prompts) and decodes batch_prompts · n samples at
  // once; the call's lines are appended together (a crash loses at most the call in flight).
  const int64_t chunk = job.batch_prompts * (job.continuous_batching ? kChunkBatches : 1);
  for (int64_t s = r.begin + done, e = 0; s < r.end; s = e) {
    e = std::min(r.end, s + chunk);
    if (job.stop_after_prompts > 0) e = std::min(e, s + job.stop_after_prompts - written);
    std::vector<std::vector<int64_t>> prompts;
    for (int64_t i = s; i < e; ++i) prompts.push_back(generation_prompt_ids(ds.records[static_cast<size_t>(i)], tok, chat, job));
    std::vector<uint64_t> streams;  // a prompt's random stream is named by its place in the whole input
    for (int64_t i = s; i < e; ++i) streams.push_back(static_cast<uint64_t>(i));
    const auto gen = generate_ids(d, prompts, job.sampling, eos, pad, job.sampling.seed, tok.vocab_size(), streams,
                                  job.batch_prompts * job.sampling.n, job.shared_prompt_cache);
    std::string lines;
    for (int64_t i = s; i < e; ++i) {
      const auto& rec = ds.records[static_cast<size_t>(i)];
      nlohmann::json line = nlohmann::json::object();
      data::write_prompt(rec, line);  // reads back as this very prompt (a raw HH transcript stays raw)
      nlohmann::json responses = nlohmann::json::array();
      for (const auto& ids : gen[static_cast<size_t>(i - s)]) responses.push_back(cut_at_stop(tok.decode(ids, true), job.sampling.stop));
      line["responses"] = std::move(responses);
      line["source_line"] = rec.line;
      lines += line.dump() + "\n";
    }
    out.append(lines);
    written += e - s;
    log << "generated " << e - r.begin << "/" << total << " prompts\n";
    if (job.stop_after_prompts > 0 && written >= job.stop_after_prompts) break;
  }
  complete = done + written == total;
  return written;
}

}  // namespace

int64_t generate_file(const model::Decoder& d, const text::Tokenizer& tok, const text::ChatTemplate& chat,
                      const GenerateJob& job, std::ostream& log, const dist::World& world) {
  if (job.batch_prompts <= 0)
    throw ConfigError("generate: batch_prompts (--batch-prompts) must be > 0, found " + std::to_string(job.batch_prompts));
  data::DatasetOptions opt = job.data_options;
  opt.min_responses = 0;  // prompts only: responses are not needed
  opt.allow_empty_responses = true;
  const data::Dataset ds = data::read_dataset(job.data, opt);
  const auto total = static_cast<int64_t>(ds.records.size());
  bool complete = false;
  if (!world.distributed()) return generate_range(d, tok, chat, job, ds, {0, total}, job.out, log, complete);
  // Sharded: whole batches per rank into OUT.part-*, joined by rank 0.
  if (io::file_exists(job.out)) {
    int64_t lines = 0;
    io::for_each_jsonl(job.out, [&](int64_t, const nlohmann::json&) { ++lines; });
    if (lines == total) {
      log << job.out << " already holds all " << total << " prompts\n";
      return 0;
    }
    throw InputError(job.out + ": holds " + std::to_string(lines) + " of " + std::to_string(total) +
                     " prompts from a single-process run: finish it as one process, or remove it");
  }
  const Range r = shard_range(total, job.batch_prompts, world.rank(), world.size());
  const std::string part = part_path(job.out, world.rank(), world.size());
  const int64_t written = generate_range(d, tok, chat, job, ds, r, part, log, complete);
  join_parts(job.out, complete, world, log);
  return written;
}

}  // namespace hps::generate

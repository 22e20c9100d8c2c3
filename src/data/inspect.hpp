// What `hps data inspect` reports about a dataset: counts, format, K distribution, reward statistics,
// token-length percentiles (with a tokenizer) and every problem found.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "text/chat.hpp"
#include "text/tokenizer.hpp"

namespace hps::data {

struct Percentiles {
  int64_t p50 = 0, p90 = 0, p99 = 0, max = 0;
};

struct DatasetReport {
  std::string path;
  Format format = Format::auto_detect;
  std::string detected_because;  // with data.format auto: why this format
  int64_t lines = 0, records = 0;
  std::map<int64_t, int64_t> k_counts;  // K → records
  int64_t with_rewards = 0;
  double reward_min = 0, reward_mean = 0, reward_max = 0;
  int64_t all_tied = 0;  // records of K ≥ 2 whose rewards are all equal: no preference (loss.ties = exclude)
  std::optional<Percentiles> prompt_tokens, response_tokens;  // with a tokenizer
  std::vector<SkippedRecord> skipped;
  std::vector<std::pair<int64_t, std::string>> notes;  // line → how it was read
  std::string chat_format;   // the renderer and the end of turn trained after each response
  std::string first_prompt;  // the first record's prompt as the model sees it (JSON-quoted), to check the template
};

// The prompt as the model sees it: raw text (HH) or messages rendered with `chat` (its ids: data::prompt_ids).
std::string prompt_text(const PreferenceRecord& r, const text::ChatTemplate& chat);

DatasetReport inspect_dataset(const Dataset& d, const text::Tokenizer* tok, const text::ChatTemplate& chat);
void print_report(const DatasetReport& r, std::ostream& out);

}  // namespace hps::data

// Preference datasets in one in-memory model: a prompt (raw text or chat messages) with K responses and
// optional rewards, read streaming from .jsonl / .jsonl.gz.
//
// Formats (auto-detected from the first record, or forced):
//   hh_rlhf   {"chosen": "\n\nHuman: …\n\nAssistant: A", "rejected": "…"}  prompt = shared prefix through the
//             last "\n\nAssistant:"; responses [chosen, rejected], rewards [1, 0].
//   pku       PKU-SafeRLHF {"prompt", "response_0", "response_1", "better_response_id", "safer_response_id", …};
//             ranking by helpfulness (better_response_id) or safety (safer_response_id).
//   ranked    {"prompt": text | messages, "responses": [...], "rewards": [...]} (the paper's augmented data).
//             A text prompt is one user message, or — with "prompt_format": "raw" — the exact prompt text
//             (an HH transcript, as `hps generate` writes it for hh_rlhf data), used verbatim like hh_rlhf's.
//   messages  {"prompt"?: text | messages, "chosen": [messages], "rejected": [messages]} (HF conversational), or
//             {"messages": [...]} (one response: the last assistant turn; SFT data).
//   text_pair TRL's standard preference format: {"prompt": text, "chosen": text, "rejected": text}, or with an
//             implicit prompt {"chosen": text, "rejected": text} split as TRL's extract_prompt does (the common
//             prefix, in characters, a trailing space left to the responses). Text prompts are used verbatim
//             (TRL applies no chat template to standard data).
//   prompt_completion  TRL's {"prompt": text | messages, "completion": text | messages} (SFT: one response).
// auto: the first record's keys decide (Dataset::detected_because says how); hh_rlhf is a text pair whose
// chosen text starts with "\n\nHuman:".
// Bad records: an InputError naming file, line, field and rule; with on_bad_record = skip, each is counted and
// kept in `skipped` (never dropped silently).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/chat.hpp"

namespace hps::data {

using Message = text::Message;  // a conversation turn is a text-layer notion (chat rendering)

enum class Format { auto_detect, hh_rlhf, pku, ranked, messages, text_pair, prompt_completion };
enum class OnBadRecord { error, skip };
enum class PkuRanking { helpful, safe };

struct PreferenceRecord {
  int64_t line = 0;                   // 1-based line in the file
  // The prompt: a conversation rendered with the chat format (prompt_messages), or — when that is empty — raw
  // text used verbatim whatever the format (an hh_rlhf transcript, or a ranked "prompt_format": "raw" prompt).
  // Every stage turns it into ids through data::prompt_ids (batching.hpp).
  std::string prompt_text;
  std::vector<Message> prompt_messages;
  std::vector<std::string> responses; // [K]
  std::vector<double> rewards;        // [K], higher is better; empty when the format has none
  std::string note;                   // how an unusual record was read (e.g. the HH split fallback)
};

// The record's rewards, or — when the data has none — its order as a ranking (K−1 for the first response
// down to 0 for the last): the rewards every loss and selection rule reads.
std::vector<double> rewards_or_rank(const PreferenceRecord& r);

struct SkippedRecord {
  int64_t line;
  std::string reason;
};

struct DatasetOptions {
  Format format = Format::auto_detect;
  OnBadRecord on_bad_record = OnBadRecord::error;
  PkuRanking pku_ranking = PkuRanking::helpful;
  int64_t min_responses = 2;  // preference training needs 2; SFT data may set 1
  // An empty (or all-whitespace) response is a bad record by default. HH-RLHF has a few pairs whose
  // preferred answer is empty (saying nothing); set this to keep them (the response is then just EOS).
  bool allow_empty_responses = false;
};

struct Dataset {
  std::string path;
  Format format = Format::auto_detect;
  std::string detected_because;  // with format auto: which keys of the first record chose the format
  std::vector<PreferenceRecord> records;
  std::vector<SkippedRecord> skipped;
  int64_t lines = 0;  // non-blank lines read
};

Dataset read_dataset(const std::string& path, const DatasetOptions& options = {});

const char* to_string(Format f);
const char* to_string(OnBadRecord o);
const char* to_string(PkuRanking r);
// ConfigError naming `field` and the accepted names on an unknown value.
// auto | hh_rlhf | pku | ranked | messages | text_pair | prompt_completion
Format parse_format(const std::string& s, std::string_view field = "data.format");
OnBadRecord parse_on_bad_record(const std::string& s, std::string_view field = "data.on_bad_record");  // error | skip
PkuRanking parse_pku_ranking(const std::string& s, std::string_view field = "data.pku_ranking");  // helpful | safe

// The record's prompt as ranked-list fields of `out` (what `hps generate` writes): "prompt" as a list of
// {role, content} messages, or a raw prompt as its text with "prompt_format": "raw". The ranked reader reads
// them back as the same prompt_text / prompt_messages, so the record renders to the same ids in every stage.
void write_prompt(const PreferenceRecord& r, nlohmann::json& out);

// The HH-RLHF split of one pair (exposed for tests): prompt, chosen response, rejected response, and a note
// when the record needed the fallback (the last "\n\nAssistant:" inside the longest common prefix).
struct HhSplit {
  std::string prompt, chosen, rejected, note;
};
HhSplit split_hh_pair(const std::string& chosen, const std::string& rejected);

}  // namespace hps::data

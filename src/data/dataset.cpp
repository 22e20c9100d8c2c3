#include "data/dataset.hpp"

#include <cmath>
#include <tuple>
#include <nlohmann/json.hpp>

#include "core/enum_names.hpp"
#include "core/error.hpp"
#include "io/jsonl.hpp"
#include "io/json_text.hpp"
#include "text/utf8.hpp"

namespace hps::data {

using nlohmann::json;

namespace {
constexpr EnumNames<Format, 7> kFormats{{{"auto", Format::auto_detect},
                                         {"hh_rlhf", Format::hh_rlhf},
                                         {"pku", Format::pku},
                                         {"ranked", Format::ranked},
                                         {"messages", Format::messages},
                                         {"text_pair", Format::text_pair},
                                         {"prompt_completion", Format::prompt_completion}}};
constexpr EnumNames<OnBadRecord, 2> kOnBadRecord{{{"error", OnBadRecord::error}, {"skip", OnBadRecord::skip}}};
constexpr EnumNames<PkuRanking, 2> kPkuRankings{{{"helpful", PkuRanking::helpful}, {"safe", PkuRanking::safe}}};
}  // namespace

const char* to_string(Format f) { return enum_name(f, kFormats).data(); }  // the table's names are literals
const char* to_string(OnBadRecord o) { return enum_name(o, kOnBadRecord).data(); }
const char* to_string(PkuRanking r) { return enum_name(r, kPkuRankings).data(); }
Format parse_format(const std::string& s, std::string_view field) { return parse_enum(s, field, kFormats); }
OnBadRecord parse_on_bad_record(const std::string& s, std::string_view field) { return parse_enum(s, field, kOnBadRecord); }
PkuRanking parse_pku_ranking(const std::string& s, std::string_view field) { return parse_enum(s, field, kPkuRankings); }

namespace {

const std::string kAssistant = "\n\nAssistant:";

// A record-level rule violation: the reason names the field; the reader adds file and line.
struct BadRecord : InputError {
  using InputError::InputError;
};

const json& field(const json& r, const char* key) {
  if (!r.contains(key)) throw BadRecord(std::string("missing field '") + key + "'");
  return r[key];
}

std::string text_field(const json& r, const char* key) {
  const json& v = field(r, key);
  if (!v.is_string()) throw BadRecord(std::string("field '") + key + "': expected a string, found " + v.type_name());
  return v.get<std::string>();
}

void require_response(const std::string& s, const std::string& what, const DatasetOptions& opt) {
  if (!opt.allow_empty_responses && s.find_first_not_of(" \t\r\n") == std::string::npos)
    throw BadRecord(what + ": empty response (allow_empty_responses = true keeps such records)");
}

std::vector<Message> messages_of(const json& v, const std::string& key) {
  if (!v.is_array()) throw BadRecord("field '" + key + "': expected a list of {role, content} messages");
  std::vector<Message> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const json& m = v[i];
    const std::string at = "field '" + key + "'[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
        !m["content"].is_string())
      throw BadRecord(at + ": expected {\"role\": string, \"content\": string}");
    const std::string role = m["role"];
    if (role != "system" && role != "user" && role != "assistant")
      throw BadRecord(at + ": role '" + role + "' is not system, user or assistant");
    out.push_back({role, m["content"]});
  }
  return out;
}

void set_prompt(PreferenceRecord& rec, const json& r) {
  const json& p = field(r, "prompt");
  // "prompt_format": "raw" marks a text prompt that is already the model's input (an HH transcript written by
  // `hps generate`); "user" (the default) wraps the text in one user turn.
  bool raw = false;
  if (r.contains("prompt_format")) {
    const json& f = r["prompt_format"];
    if (!f.is_string() || (f != "raw" && f != "user"))
      throw BadRecord("field 'prompt_format': expected \"raw\" (the prompt text is used verbatim) or \"user\" (one "
                      "user message), found " + io::json_excerpt(f));
    if (!p.is_string()) throw BadRecord("field 'prompt_format': only a text prompt has one (messages are rendered with the chat format)");
    raw = f == "raw";
  }
  if (p.is_string() && raw) {
    rec.prompt_text = p.get<std::string>();
    if (rec.prompt_text.empty()) throw BadRecord("field 'prompt': empty raw prompt");
  } else if (p.is_string()) {
    rec.prompt_messages = {{"user", p.get<std::string>()}};
  } else {
    rec.prompt_messages = messages_of(p, "prompt");
    if (rec.prompt_messages.empty()) throw BadRecord("field 'prompt': empty message list");
  }
}

PreferenceRecord read_hh(const json& r, const DatasetOptions& opt) {
  PreferenceRecord rec;
  HhSplit s = split_hh_pair(text_field(r, "chosen"), text_field(r, "rejected"));
  require_response(s.chosen, "field 'chosen'", opt);
  require_response(s.rejected, "field 'rejected'", opt);
  rec.prompt_text = std::move(s.prompt);
  rec.responses = {std::move(s.chosen), std::move(s.rejected)};
  rec.rewards = {1.0, 0.0};
  rec.note = std::move(s.note);
  return rec;
}

PreferenceRecord read_pku(const json& r, const DatasetOptions& opt) {
  PreferenceRecord rec;
  rec.prompt_messages = {{"user", text_field(r, "prompt")}};
  const std::string r0 = text_field(r, "response_0"), r1 = text_field(r, "response_1");
  require_response(r0, "field 'response_0'", opt);
  require_response(r1, "field 'response_1'", opt);
  const char* key = opt.pku_ranking == PkuRanking::helpful ? "better_response_id" : "safer_response_id";
  const json& id = field(r, key);
  if (!id.is_number_integer() || (id.get<int64_t>() != 0 && id.get<int64_t>() != 1))
    throw BadRecord(std::string("field '") + key + "': expected 0 or 1, found " + io::json_excerpt(id));
  const bool first = id.get<int64_t>() == 0;
  rec.responses = {first ? r0 : r1, first ? r1 : r0};
  rec.rewards = {1.0, 0.0};
  return rec;
}

PreferenceRecord read_ranked(const json& r, const DatasetOptions& opt) {
  PreferenceRecord rec;
  set_prompt(rec, r);
  if (!r.contains("responses") && opt.min_responses == 0) return rec;  // prompts only (generation input)
  const json& resp = field(r, "responses");
  if (!resp.is_array()) throw BadRecord("field 'responses': expected a list of strings");
  for (size_t i = 0; i < resp.size(); ++i) {
    if (!resp[i].is_string()) throw BadRecord("field 'responses'[" + std::to_string(i) + "]: expected a string");
    rec.responses.push_back(resp[i].get<std::string>());
    require_response(rec.responses.back(), "field 'responses'[" + std::to_string(i) + "]", opt);
  }
  if (r.contains("rewards")) {
    const json& rw = r["rewards"];
    if (!rw.is_array() || rw.size() != resp.size())
      throw BadRecord("field 'rewards': expected " + std::to_string(resp.size()) + " numbers (one per response), found " +
                      (rw.is_array() ? std::to_string(rw.size()) : std::string(rw.type_name())));
    for (size_t i = 0; i < rw.size(); ++i) {
      if (!rw[i].is_number()) throw BadRecord("field 'rewards'[" + std::to_string(i) + "]: expected a number");
      const double v = rw[i].get<double>();
      if (!std::isfinite(v)) throw BadRecord("field 'rewards'[" + std::to_string(i) + "]: not finite");
      rec.rewards.push_back(v);
    }
  }
  return rec;
}

PreferenceRecord read_messages(const json& r, const DatasetOptions& opt) {
  PreferenceRecord rec;
  if (r.contains("messages")) {  // SFT style: the last assistant turn is the response
    auto msgs = messages_of(r["messages"], "messages");
    if (msgs.empty() || msgs.back().role != "assistant")
      throw BadRecord("field 'messages': the last message must be the assistant's response");
    rec.responses = {msgs.back().content};
    require_response(rec.responses[0], "field 'messages'", opt);
    msgs.pop_back();
    if (msgs.empty()) throw BadRecord("field 'messages': no prompt before the response");
    rec.prompt_messages = std::move(msgs);
    return rec;
  }
  auto chosen = messages_of(field(r, "chosen"), "chosen"), rejected = messages_of(field(r, "rejected"), "rejected");
  for (auto* m : {&chosen, &rejected})
    if (m->empty() || m->back().role != "assistant")
      throw BadRecord(std::string("field '") + (m == &chosen ? "chosen" : "rejected") +
                      "': the last message must be the assistant's response");
  if (r.contains("prompt")) {
    set_prompt(rec, r);
    // Datasets that carry a separate prompt repeat it (or not) in chosen/rejected; keep the final turn only.
  } else {
    std::vector<Message> pc(chosen.begin(), chosen.end() - 1), pr(rejected.begin(), rejected.end() - 1);
    const bool same = pc.size() == pr.size() &&
                      std::equal(pc.begin(), pc.end(), pr.begin(), [](const Message& a, const Message& b) {
                        return a.role == b.role && a.content == b.content;
                      });
    if (!same) throw BadRecord("fields 'chosen' and 'rejected': the messages before the final response differ");
    if (pc.empty()) throw BadRecord("field 'chosen': no prompt before the response");
    rec.prompt_messages = std::move(pc);
  }
  rec.responses = {chosen.back().content, rejected.back().content};
  require_response(rec.responses[0], "field 'chosen'", opt);
  require_response(rec.responses[1], "field 'rejected'", opt);
  rec.rewards = {1.0, 0.0};
  return rec;
}

// TRL's extract_prompt on text: the common prefix in characters (code points, as Python compares str), a space
// just before the first difference left to the responses. Where TRL would index past the start or find no
// difference at all (identical texts, or one a prefix of the other), this is a named bad record instead.
PreferenceRecord read_text_pair(const json& r, const DatasetOptions& opt) {
  PreferenceRecord rec;
  std::string chosen = text_field(r, "chosen"), rejected = text_field(r, "rejected");
  if (r.contains("prompt")) {
    rec.prompt_text = text_field(r, "prompt");
    if (rec.prompt_text.empty()) throw BadRecord("field 'prompt': empty");
  } else {
    size_t i = 0;  // byte offset of the first differing character
    while (i < chosen.size() && i < rejected.size()) {
      const size_t n = text::utf8_len(static_cast<unsigned char>(chosen[i]));
      if (chosen.compare(i, n, rejected, i, n) != 0) break;
      i += n;
    }
    if (i == chosen.size() || i == rejected.size())
      throw BadRecord("fields 'chosen'/'rejected': one is a prefix of the other (no implicit prompt to split off)");
    if (i == 0) throw BadRecord("fields 'chosen'/'rejected': no shared prompt (they differ from the first character)");
    if (chosen[i - 1] == ' ') --i;
    rec.prompt_text = chosen.substr(0, i);
    chosen.erase(0, i), rejected.erase(0, i);
  }
  require_response(chosen, "field 'chosen'", opt);
  require_response(rejected, "field 'rejected'", opt);
  rec.responses = {std::move(chosen), std::move(rejected)};
  rec.rewards = {1.0, 0.0};
  return rec;
}

// TRL's prompt-completion: a text prompt verbatim, or messages; the completion text or one assistant message.
PreferenceRecord read_prompt_completion(const json& r, const DatasetOptions& opt) {
  PreferenceRecord rec;
  const json& p = field(r, "prompt");
  if (p.is_string()) {
    rec.prompt_text = p.get<std::string>();
    if (rec.prompt_text.empty()) throw BadRecord("field 'prompt': empty");
  } else {
    rec.prompt_messages = messages_of(p, "prompt");
    if (rec.prompt_messages.empty()) throw BadRecord("field 'prompt': empty message list");
  }
  const json& c = field(r, "completion");
  if (c.is_string()) {
    rec.responses = {c.get<std::string>()};
  } else {
    const auto m = messages_of(c, "completion");
    if (m.size() != 1 || m[0].role != "assistant")
      throw BadRecord("field 'completion': expected a text or one assistant message, found " + std::to_string(m.size()) +
                      " message(s)");
    rec.responses = {m[0].content};
  }
  require_response(rec.responses[0], "field 'completion'", opt);
  return rec;
}

// The format of the first record, and why (what `hps data inspect` shows).
std::pair<Format, std::string> detect(const json& r) {
  if (!r.is_object()) return {Format::auto_detect, ""};
  if (r.contains("response_0")) return {Format::pku, "the first record has 'response_0' (PKU-SafeRLHF)"};
  if (r.contains("responses")) return {Format::ranked, "the first record has 'responses'"};
  if (r.contains("messages")) return {Format::messages, "the first record has 'messages'"};
  if (r.contains("completion")) return {Format::prompt_completion, "the first record has 'completion' (TRL prompt-completion)"};
  if (r.contains("chosen")) {
    if (!r["chosen"].is_string()) return {Format::messages, "the first record's 'chosen' is a message list (conversational)"};
    if (r.contains("prompt")) return {Format::text_pair, "the first record has 'prompt' and a text 'chosen' (TRL standard)"};
    if (r["chosen"].get_ref<const std::string&>().starts_with("\n\nHuman:"))
      return {Format::hh_rlhf, "the first record's 'chosen' text starts with \"\\n\\nHuman:\" (an HH-RLHF transcript)"};
    return {Format::text_pair, "the first record has text 'chosen'/'rejected' and no prompt (TRL standard, implicit prompt)"};
  }
  if (r.contains("prompt")) return {Format::ranked, "the first record has only a 'prompt' (generation input)"};
  return {Format::auto_detect, ""};
}

}  // namespace

std::vector<double> rewards_or_rank(const PreferenceRecord& r) {
  if (!r.rewards.empty()) return r.rewards;
  std::vector<double> v(r.responses.size());
  for (size_t k = 0; k < v.size(); ++k) v[k] = static_cast<double>(v.size() - 1 - k);
  return v;
}

void write_prompt(const PreferenceRecord& r, json& out) {
  if (r.prompt_messages.empty()) {
    out["prompt"] = r.prompt_text;
    out["prompt_format"] = "raw";
    return;
  }
  json m = json::array();
  for (const auto& x : r.prompt_messages) m.push_back({{"role", x.role}, {"content", x.content}});
  out["prompt"] = std::move(m);
  out.erase("prompt_format");
}

HhSplit split_hh_pair(const std::string& chosen, const std::string& rejected) {
  HhSplit s;
  const size_t k = chosen.rfind(kAssistant);
  if (k != std::string::npos && rejected.compare(0, k + kAssistant.size(), chosen, 0, k + kAssistant.size()) == 0) {
    s.prompt = chosen.substr(0, k + kAssistant.size());
  } else {
    // The final turn of one side contains text that looks like another turn (seen in HH-RLHF, e.g. a
    // response with "  Human: …\n\nAssistant:" inside it): the prompt is the longest common prefix, cut
    // after its last "\n\nAssistant:".
    size_t n = 0;
    while (n < chosen.size() && n < rejected.size() && chosen[n] == rejected[n]) ++n;
    const size_t j = chosen.rfind(kAssistant, n >= kAssistant.size() ? n - kAssistant.size() : std::string::npos);
    if (j == std::string::npos || n < kAssistant.size())
      throw BadRecord("fields 'chosen'/'rejected': no shared prefix ending in \"\\n\\nAssistant:\" (not an HH-RLHF pair)");
    s.prompt = chosen.substr(0, j + kAssistant.size());
    s.note = "split at the last \"\\n\\nAssistant:\" of the common prefix (the last turns differ in structure)";
  }
  s.chosen = chosen.substr(s.prompt.size());
  s.rejected = rejected.substr(s.prompt.size());
  return s;
}

Dataset read_dataset(const std::string& path, const DatasetOptions& opt) {
  Dataset ds;
  ds.path = path;
  ds.format = opt.format;
  io::for_each_jsonl(path, [&](int64_t line, const json& r) {
    ++ds.lines;
    try {
      if (!r.is_object()) throw BadRecord(std::string("expected a JSON object, found ") + r.type_name());
      if (ds.format == Format::auto_detect) {
        std::tie(ds.format, ds.detected_because) = detect(r);
        if (ds.format == Format::auto_detect)
          throw InputError("cannot detect the dataset format from the first record's keys (expected chosen/rejected, "
                           "response_0/response_1, responses, messages, or prompt/completion); set the format explicitly");
      }
      PreferenceRecord rec;
      switch (ds.format) {
        case Format::hh_rlhf: rec = read_hh(r, opt); break;
        case Format::pku: rec = read_pku(r, opt); break;
        case Format::ranked: rec = read_ranked(r, opt); break;
        case Format::messages: rec = read_messages(r, opt); break;
        case Format::text_pair: rec = read_text_pair(r, opt); break;
        case Format::prompt_completion: rec = read_prompt_completion(r, opt); break;
        case Format::auto_detect: break;
      }
      if (static_cast<int64_t>(rec.responses.size()) < opt.min_responses)
        throw BadRecord("has " + std::to_string(rec.responses.size()) + " response(s); at least " +
                        std::to_string(opt.min_responses) + " needed");
      rec.line = line;
      ds.records.push_back(std::move(rec));
    } catch (const BadRecord& e) {
      if (opt.on_bad_record == OnBadRecord::error)
        throw InputError(path + ":" + std::to_string(line) + ": " + e.message() + " (format " + to_string(ds.format) +
                         "; set on_bad_record = skip to skip and report such records)");
      ds.skipped.push_back({line, e.message()});
    }
  });
  return ds;
}

}  // namespace hps::data

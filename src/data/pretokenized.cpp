#include "data/pretokenized.hpp"

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "data/batching.hpp"
#include "io/jsonl.hpp"
#include "io/json_text.hpp"

namespace hps::data {

namespace {

std::vector<int64_t> token_list(const nlohmann::json& v, const std::string& field, int64_t vocab) {
  if (!v.is_array()) throw InputError("field '" + field + "': expected an array of token ids, found " + v.type_name());
  if (v.empty()) throw InputError("field '" + field + "': must not be empty");
  std::vector<int64_t> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number_integer())
      throw InputError("field '" + field + "'[" + std::to_string(i) + "]: expected an integer token id, found " +
                       io::json_excerpt(v[i]));
    const int64_t id = v[i].get<int64_t>();
    if (id < 0 || id >= vocab)
      throw InputError("field '" + field + "'[" + std::to_string(i) + "]: token id " + std::to_string(id) +
                       " outside the model's vocabulary [0, " + std::to_string(vocab) + ")");
    out.push_back(id);
  }
  return out;
}

}  // namespace

std::vector<TokenizedRecord> read_pretokenized(const std::string& path, int64_t vocab_size) {
  std::vector<TokenizedRecord> out;
  io::for_each_jsonl(path, [&](int64_t line, const nlohmann::json& j) {
    if (!j.is_object()) throw InputError("expected a JSON object with prompt_ids and response_ids");
    for (const char* k : {"prompt_ids", "response_ids"})
      if (!j.contains(k)) throw InputError(std::string("missing field '") + k + "'");
    TokenizedRecord r;
    r.line = line;
    r.prompt = token_list(j["prompt_ids"], "prompt_ids", vocab_size);
    const auto& resp = j["response_ids"];
    if (!resp.is_array() || resp.empty())
      throw InputError("field 'response_ids': expected a non-empty array of token-id arrays");
    for (size_t k = 0; k < resp.size(); ++k)
      r.responses.push_back(token_list(resp[k], "response_ids[" + std::to_string(k) + "]", vocab_size));
    out.push_back(std::move(r));
  });
  return out;
}

SequenceBatch pad_sequences(const std::vector<PromptResponse>& seqs, int64_t pad_id) {
  std::vector<EncodedExample> ex;
  ex.reserve(seqs.size());
  for (const auto& s : seqs) ex.push_back({0, *s.prompt, {*s.response}, {0}, {0.0}, false});
  Batch b = collate(ex, pad_id, PadSide::right);
  return {b.ids, b.mask, b.response_mask};
}

}  // namespace hps::data

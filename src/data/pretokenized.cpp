#include "data/pretokenized.hpp"

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/jsonl.hpp"

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
                       v[i].dump());
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
  int64_t T = 0;
  for (const auto& s : seqs) T = std::max<int64_t>(T, s.prompt->size() + s.response->size());
  const int64_t B = static_cast<int64_t>(seqs.size());
  SequenceBatch b;
  b.ids = at::full({B, T}, pad_id, at::kLong);
  b.mask = at::zeros({B, T}, at::kLong);
  b.response_mask = at::zeros({B, T}, at::kLong);
  auto ids = b.ids.accessor<int64_t, 2>();
  auto mask = b.mask.accessor<int64_t, 2>();
  auto resp = b.response_mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < B; ++i) {
    int64_t t = 0;
    for (int64_t id : *seqs[i].prompt) ids[i][t] = id, mask[i][t++] = 1;
    for (int64_t id : *seqs[i].response) ids[i][t] = id, mask[i][t] = 1, resp[i][t++] = 1;
  }
  return b;
}

}  // namespace hps::data

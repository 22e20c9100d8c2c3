#include "data/batching.hpp"

#include <algorithm>
#include <random>

#include "core/error.hpp"
#include "data/inspect.hpp"

namespace hps::data {

std::vector<int64_t> prompt_ids(const PreferenceRecord& r, const text::Tokenizer& tok, const text::ChatTemplate& chat,
                                int64_t max_prompt_length, bool* truncated) {
  // A Jinja template writes its own BOS; built-in renderers leave it to the post-processor.
  const bool add_special = r.prompt_messages.empty() || !text::renders_special_tokens(chat);
  auto ids = tok.encode(prompt_text(r, chat), add_special);
  const bool cut = max_prompt_length > 0 && static_cast<int64_t>(ids.size()) > max_prompt_length;
  if (cut) ids.erase(ids.begin(), ids.end() - max_prompt_length);  // keep the end
  if (truncated) *truncated = cut;
  return ids;
}

Encoder::Encoder(const text::Tokenizer& tok, text::ChatTemplate chat, EncodeOptions opts)
    : tok_(&tok), chat_(std::move(chat)), opts_(opts) {
  if (opts_.max_prompt_length <= 0 || opts_.max_length <= opts_.max_prompt_length)
    throw ConfigError("data.max_length (" + std::to_string(opts_.max_length) + ") must exceed data.max_prompt_length (" +
                      std::to_string(opts_.max_prompt_length) + ") > 0");
  if (opts_.add_end_of_turn) {
    const auto eos = tok.config().eos_token;
    suffix_ = text::response_suffix(chat_, eos ? *eos : "");
  }
}

EncodedExample Encoder::encode(const PreferenceRecord& r, const std::vector<int64_t>& which) const {
  EncodedExample ex;
  ex.line = r.line;
  ex.prompt = prompt_ids(r, *tok_, chat_, opts_.max_prompt_length, &ex.truncated);
  const int64_t room = opts_.max_length - static_cast<int64_t>(ex.prompt.size());
  const auto K = static_cast<int64_t>(r.responses.size());
  const auto rewards = rewards_or_rank(r);
  for (int64_t k : which) {
    if (k < 0 || k >= K) throw InputError("line " + std::to_string(r.line) + ": response index " + std::to_string(k) + " out of range");
    auto ids = tok_->encode(r.responses[static_cast<size_t>(k)] + suffix_, false);
    if (static_cast<int64_t>(ids.size()) > room) ids.resize(static_cast<size_t>(room)), ex.truncated = true;
    ex.responses.push_back(std::move(ids));
    ex.response_index.push_back(k);
    ex.rewards.push_back(rewards[static_cast<size_t>(k)]);
  }
  return ex;
}

std::vector<TokenizedRecord> tokenize_dataset(const Dataset& d, const Encoder& enc) {
  std::vector<TokenizedRecord> out;
  out.reserve(d.records.size());
  for (const auto& r : d.records) {
    auto ex = enc.encode(r, select_all(r));
    out.push_back({r.line, std::move(ex.prompt), std::move(ex.responses)});
  }
  return out;
}

Batch slice_prompts(const Batch& b, int64_t i0, int64_t i1) {
  if (i0 < 0 || i1 > b.prompts || i0 >= i1)
    throw InternalError("slice_prompts: [" + std::to_string(i0) + ", " + std::to_string(i1) + ") of " +
                        std::to_string(b.prompts) + " prompts");
  Batch s;
  s.prompts = i1 - i0, s.k = b.k;
  const at::Tensor mask = b.mask.slice(0, i0 * b.k, i1 * b.k);           // mask: [n·k, T]
  const at::Tensor used = mask.any(0).nonzero().view(-1);                 // used: columns with a real token
  const int64_t t0 = used.numel() ? used[0].item<int64_t>() : 0;
  const int64_t t1 = used.numel() ? used[-1].item<int64_t>() + 1 : 1;
  auto rows = [&](const at::Tensor& t) { return t.slice(0, i0 * b.k, i1 * b.k).slice(1, t0, t1).contiguous(); };
  s.ids = rows(b.ids), s.mask = rows(b.mask), s.response_mask = rows(b.response_mask);
  s.rewards = b.rewards.slice(0, i0, i1).contiguous();
  s.lines.assign(b.lines.begin() + i0, b.lines.begin() + i1);
  s.response_index.assign(b.response_index.begin() + i0, b.response_index.begin() + i1);
  return s;
}

Batch collate(const std::vector<EncodedExample>& ex, int64_t pad_id, PadSide side) {
  if (ex.empty()) throw InputError("collate: empty batch");
  Batch b;
  b.prompts = static_cast<int64_t>(ex.size());
  int64_t T = 0;
  for (const auto& e : ex) {
    b.k = std::max<int64_t>(b.k, static_cast<int64_t>(e.responses.size()));
    T = std::max<int64_t>(T, static_cast<int64_t>(e.prompt.size()));
    for (const auto& r : e.responses) T = std::max<int64_t>(T, static_cast<int64_t>(e.prompt.size() + r.size()));
  }
  const int64_t rows = b.prompts * b.k;
  b.ids = at::full({rows, T}, pad_id, at::kLong);
  b.mask = at::zeros({rows, T}, at::kLong);
  b.response_mask = at::zeros({rows, T}, at::kLong);
  b.rewards = at::full({b.prompts, b.k}, NAN, at::kDouble);
  auto ids = b.ids.accessor<int64_t, 2>();
  auto mask = b.mask.accessor<int64_t, 2>();
  auto resp = b.response_mask.accessor<int64_t, 2>();
  auto rew = b.rewards.accessor<double, 2>();
  for (int64_t i = 0; i < b.prompts; ++i) {
    const auto& e = ex[static_cast<size_t>(i)];
    b.lines.push_back(e.line);
    auto index = e.response_index;
    index.resize(static_cast<size_t>(b.k), -1);
    b.response_index.push_back(index);
    for (int64_t j = 0; j < b.k; ++j) {
      // A prompt with fewer responses than the batch gets prompt-only rows (no response tokens, index -1).
      const bool real = j < static_cast<int64_t>(e.responses.size());
      static const std::vector<int64_t> none;
      const auto& r = real ? e.responses[static_cast<size_t>(j)] : none;
      const int64_t row = i * b.k + j;
      const auto len = static_cast<int64_t>(e.prompt.size() + r.size());
      int64_t t = side == PadSide::left ? T - len : 0;
      for (int64_t id : e.prompt) ids[row][t] = id, mask[row][t++] = 1;
      for (int64_t id : r) ids[row][t] = id, mask[row][t] = 1, resp[row][t++] = 1;
      if (real) rew[i][j] = e.rewards[static_cast<size_t>(j)];
    }
  }
  return b;
}

std::vector<int64_t> select_all(const PreferenceRecord& r) {
  std::vector<int64_t> v(r.responses.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>(i);
  return v;
}

std::vector<int64_t> select_best_worst(const PreferenceRecord& r) {
  const auto K = static_cast<int64_t>(r.responses.size());
  if (r.rewards.empty()) return {0, K - 1};
  // Ties go to the first slot, as the loss core's ranking does.
  int64_t best = 0, worst = 0;
  for (int64_t k = 1; k < K; ++k) {
    if (r.rewards[static_cast<size_t>(k)] > r.rewards[static_cast<size_t>(best)]) best = k;
    if (r.rewards[static_cast<size_t>(k)] <= r.rewards[static_cast<size_t>(worst)]) worst = k;
  }
  return {best, worst};
}

std::vector<int64_t> select_best_hardest(const PreferenceRecord& r) {
  const auto K = static_cast<int64_t>(r.responses.size());
  if (r.rewards.empty()) return {0, 1};
  const auto [best, worst] = std::pair{select_best_worst(r)[0], select_best_worst(r)[1]};
  // The hardest negative: the highest reward strictly below the best (a tie carries no preference).
  int64_t hard = worst;
  for (int64_t k = 0; k < K; ++k) {
    const double v = r.rewards[static_cast<size_t>(k)];
    if (v < r.rewards[static_cast<size_t>(best)] && v > r.rewards[static_cast<size_t>(hard)]) hard = k;
  }
  return {best, hard};
}

std::vector<size_t> epoch_order(size_t n, uint64_t seed, int64_t epoch) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(epoch)};
  std::mt19937_64 gen(seq);
  for (size_t i = n; i > 1; --i) {
    // Unbiased draw in [0, i): reject the top partial range.
    const uint64_t bound = i, limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do x = gen(); while (x >= limit);
    std::swap(order[i - 1], order[static_cast<size_t>(x % bound)]);
  }
  return order;
}

PreferenceLoader::PreferenceLoader(const Dataset& d, const Encoder& enc, int64_t pad_id, LoaderOptions opts)
    : data_(&d), enc_(&enc), pad_id_(pad_id), opts_(opts) {
  if (opts_.batch_prompts <= 0) throw ConfigError("batch size must be > 0");
  if (opts_.shards <= 0 || opts_.shard < 0 || opts_.shard >= opts_.shards)
    throw InternalError("loader shard " + std::to_string(opts_.shard) + " of " + std::to_string(opts_.shards));
  seek(0, 0);
}

void PreferenceLoader::seek(int64_t epoch, size_t position) {
  epoch_ = epoch;
  pos_ = position;
  if (opts_.shuffle) {
    order_ = epoch_order(data_->records.size(), opts_.seed, epoch_);
  } else {
    order_.resize(data_->records.size());
    for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
  }
  if (position > order_.size())
    throw InputError("loader position " + std::to_string(position) + " is past the " + std::to_string(order_.size()) +
                     " records of an epoch (a checkpoint of other data?)");
}

void PreferenceLoader::next_epoch() { seek(epoch_ + 1, 0); }

std::optional<Batch> PreferenceLoader::next(const Select& select) {
  if (pos_ >= order_.size()) return std::nullopt;
  const auto shards = static_cast<size_t>(opts_.shards), shard = static_cast<size_t>(opts_.shard);
  const size_t end = std::min(order_.size(), pos_ + static_cast<size_t>(opts_.batch_prompts) * shards);
  const size_t n = end - pos_, from = pos_ + shard * n / shards, to = pos_ + (shard + 1) * n / shards;
  pos_ = end;
  if (from == to) return Batch{};  // this shard's part of a short last batch
  std::vector<EncodedExample> ex;
  for (size_t i = from; i < to; ++i) {
    const auto& rec = data_->records[order_[i]];
    ex.push_back(enc_->encode(rec, select(rec)));
  }
  return collate(ex, pad_id_, opts_.pad_side);
}

}  // namespace hps::data

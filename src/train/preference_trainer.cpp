#include "train/preference_trainer.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/DeviceAccelerator.h>
#include <c10/core/GradMode.h>

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.hpp"
#include "data/batching.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"
#include "model/load.hpp"
#include "model/logprobs.hpp"
#include "model/score_records.hpp"
#include "prefs/losses.hpp"
#include "text/chat.hpp"
#include "text/tokenizer.hpp"
#include "train/ref_cache.hpp"
#include "train/rm_loss.hpp"
#include "train/run_checkpoint.hpp"

namespace hps::train {

using nlohmann::json;

std::atomic<bool>& PreferenceTrainer::stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

namespace {

// The best response (highest reward, first on ties; the first without rewards): what SFT trains on.
std::vector<int64_t> select_best(const data::PreferenceRecord& r) {
  int64_t best = 0;
  for (size_t k = 1; k < r.rewards.size(); ++k)
    if (r.rewards[k] > r.rewards[static_cast<size_t>(best)]) best = static_cast<int64_t>(k);
  return {best};
}


}  // namespace

prefs::Selection select_record(const data::PreferenceRecord& r, const prefs::LossConfig& lc, const at::Tensor& u) {
  const auto K = static_cast<int64_t>(r.responses.size());
  // float64, as annotated: the loss reuses this selection and never re-ranks (float32 would merge rewards).
  at::Tensor reward = at::tensor(data::rewards_or_rank(r), at::kDouble).view({1, K});
  return prefs::select_slots(reward, at::Tensor(), lc, u);
}

namespace {

double peak_gib(const at::Device& d) {
  if (!d.is_cuda()) return 0.0;
  return static_cast<double>(at::accelerator::getDeviceStats(d.index()).allocated_bytes[0].peak) / 1073741824.0;
}

at::Tensor generator_state(at::Generator& g) { return g.get_state(); }

}  // namespace

struct PreferenceTrainer::Impl {
  TrainConfig cfg;
  std::string config_text;
  at::Device device = at::kCPU;
  std::optional<at::ScalarType> autocast;  // [model] autocast
  std::optional<text::Tokenizer> tok;
  text::ChatTemplate chat;
  data::Dataset train_set, eval_set;
  std::vector<data::SkippedRecord> skipped;  // bad records left out under data.on_bad_record = skip
  std::unique_ptr<data::Encoder> encoder;
  std::unique_ptr<data::PreferenceLoader> loader;
  model::Decoder policy;
  std::optional<model::Decoder> ref;  // full fine-tuning; LoRA uses the policy with adapters off
  std::unique_ptr<AdamW> opt;
  std::optional<RefCache> cache;  // train.ref_cache: reference log-probs of every training response
  at::Generator sampler = at::make_generator<at::CPUGeneratorImpl>(0);
  int64_t step = 0, bad_steps = 0, total = 0, warmup = 0;
  std::vector<EvalLog> evals;
  int64_t pad_id = 0;

  void setup();
  void restore(const std::string& dir);
  void save(std::ostream& log);
  StepLog train_step();
  EvalLog evaluate();
  // Forward of one batch: the PrefBatch over all K slots (unforwarded ones hold zeros) and its draws.
  struct Forwarded {
    prefs::PrefBatch batch;
    prefs::Selection sel;  // chosen once, before the forward: the loss reads exactly what was forwarded
    data::Batch rows;
    int64_t tokens = 0;
  };
  Forwarded forward(data::PreferenceLoader& ld, bool grad, at::Generator& gen, const prefs::LossConfig& lc,
                    bool& exhausted);
  at::Tensor ref_logprobs(const data::Batch& b);
  void build_ref_cache(std::ostream& log);
  void to_reward_model();
  nlohmann::json model_config_json() const;
  std::string converted_from;  // the causal-LM architecture a reward model was made from

  // One micro-batch of the configured task: its loss (differentiable when grad) and metrics.
  struct Micro {
    at::Tensor loss;
    double accuracy = 0, rm_dpo = 0, rm_rdpo = 0, chosen = 0, rejected = 0;
    int64_t no_preference = 0;  // prompts whose responses all tie: no loss term
    data::Batch rows;
    int64_t tokens = 0;
  };
  Micro micro_step(data::PreferenceLoader& ld, bool grad, at::Generator& gen, const prefs::LossConfig& lc,
                   bool& exhausted);
};

PreferenceTrainer::PreferenceTrainer(TrainConfig cfg, std::string config_text) : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(cfg);
  impl_->config_text = std::move(config_text);
  impl_->setup();
}
PreferenceTrainer::~PreferenceTrainer() = default;

std::vector<EvalLog> PreferenceTrainer::evals() const { return impl_->evals; }
int64_t PreferenceTrainer::total_steps() const { return impl_->total; }

void PreferenceTrainer::Impl::setup() {
  // Seed torch's global generators too (LoRA dropout draws from them): a run repeats exactly.
  at::manual_seed(cfg.train.seed);
  device = at::Device(cfg.model.device);
  if (device.is_cuda() && !device.has_index()) device = at::Device(at::kCUDA, 0);
  tok = text::Tokenizer::from_dir(cfg.model.tokenizer);
  chat = text::choose_chat_template(tok->config().chat_template, cfg.data.chat_format);
  data::Dataset all = data::read_dataset(cfg.data.path, cfg.data.options);
  if (all.records.empty()) throw InputError(cfg.data.path + ": no usable records");
  skipped = all.skipped;
  // Deterministic held-out split: the last eval_fraction of a seeded permutation.
  const auto order = data::epoch_order(all.records.size(), cfg.train.seed ^ 0x5eedULL, -1);
  const auto n_eval = static_cast<size_t>(cfg.data.eval_fraction * static_cast<double>(all.records.size()));
  train_set.path = eval_set.path = all.path;
  train_set.format = eval_set.format = all.format;
  for (size_t i = 0; i < order.size(); ++i)
    (i < order.size() - n_eval ? train_set : eval_set).records.push_back(all.records[order[i]]);
  model::LoadOptions lo{device, std::nullopt};
  if (!cfg.model.dtype.empty()) lo.dtype = model::parse_dtype(cfg.model.dtype);
  policy = model::load_model(cfg.model.path, lo);
  if (!cfg.model.autocast.empty()) {
    if (policy.dtype() != at::kFloat)
      throw ConfigError("model.autocast needs float32 weights; " + cfg.model.path + " loads as " +
                        model::dtype_to_hf(policy.dtype()) + " (set model.dtype = float32)");
    autocast = model::parse_dtype(cfg.model.autocast);
  }
  if (tok->vocab_size() > policy.config.vocab_size)
    throw InputError("tokenizer has " + std::to_string(tok->vocab_size()) + " tokens, model vocabulary " +
                     std::to_string(policy.config.vocab_size));
  policy.state.grad_checkpointing = cfg.model.grad_checkpointing;
  if (cfg.task == Task::reward && policy.config.head == model::Head::causal_lm) to_reward_model();
  if (cfg.task != Task::reward && policy.config.head != model::Head::causal_lm)
    throw ConfigError(cfg.model.path + " is a reward model (" + policy.config.architecture + "); " + to_string(cfg.task) +
                      " training needs a causal LM");
  if (cfg.use_lora) {
    model::add_lora(policy, cfg.lora, cfg.train.seed);
  } else {
    policy.set_requires_grad(true, true);
    if (cfg.task == Task::preference) {  // SFT and reward models have no reference
      ref = model::load_model(cfg.model.path, lo);
      ref->set_requires_grad(false, false);
    }
  }
  pad_id = tok->pad_id().value_or(policy.config.pad_token_id.value_or(0));
  encoder = std::make_unique<data::Encoder>(*tok, chat, data::EncodeOptions{cfg.data.max_prompt_length, cfg.data.max_length, true});
  loader = std::make_unique<data::PreferenceLoader>(train_set, *encoder, pad_id,
                                                    data::LoaderOptions{cfg.train.batch_prompts, cfg.train.seed, true,
                                                                        data::PadSide::right});
  const int64_t micro = (static_cast<int64_t>(train_set.records.size()) + cfg.train.batch_prompts - 1) / cfg.train.batch_prompts;
  const int64_t per_epoch = std::max<int64_t>(1, micro / cfg.train.grad_accum);
  total = cfg.train.max_steps > 0 ? cfg.train.max_steps : cfg.train.epochs * per_epoch;
  warmup = static_cast<int64_t>(cfg.train.warmup_ratio * static_cast<double>(total));
  sampler = at::make_generator<at::CPUGeneratorImpl>(cfg.train.seed + 1);
  opt = std::make_unique<AdamW>(policy.trainable_parameters(), cfg.train.adamw);
}

void PreferenceTrainer::Impl::to_reward_model() {
  // A causal LM becomes a sequence classifier as transformers' AutoModelForSequenceClassification does from
  // such a checkpoint: drop the LM head, add a fresh 1-label score head (normal(0, 0.02)).
  auto& c = policy.config;
  const std::string from = c.architecture;
  c.architecture.replace(c.architecture.find("ForCausalLM"), std::string("ForCausalLM").size(), "ForSequenceClassification");
  c.head = model::Head::sequence_classification;
  c.num_labels = 1;
  policy.lm_head = at::Tensor();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.train.seed + 11);
  policy.score = at::normal(0.0, 0.02, {1, c.hidden_size}, gen, at::kFloat).to(device, policy.dtype());
  converted_from = from;
}

nlohmann::json PreferenceTrainer::Impl::model_config_json() const {
  nlohmann::json j = io::read_json_file(cfg.model.path + "/config.json");
  if (!converted_from.empty()) {
    j["architectures"] = {policy.config.architecture};
    j["num_labels"] = 1;
    j["id2label"] = {{"0", "LABEL_0"}};
    j["label2id"] = {{"LABEL_0", 0}};
  }
  return j;
}

void PreferenceTrainer::Impl::build_ref_cache(std::ostream& log) {
  // The key: every file the reference values depend on, plus the settings that shape the token ids.
  nlohmann::json key = {{"tokenizer", file_fingerprint(cfg.model.tokenizer + "/tokenizer.json")},
                        {"data", file_fingerprint(cfg.data.path)},
                        {"chat_format", text::to_string(chat.format)},
                        {"default_system", chat.default_system},
                        {"max_prompt_length", cfg.data.max_prompt_length},
                        {"max_length", cfg.data.max_length},
                        {"format", data::to_string(train_set.format)},
                        {"pku_ranking", cfg.data.options.pku_ranking == data::PkuRanking::helpful ? "helpful" : "safe"},
                        {"dtype", model::dtype_to_hf(policy.dtype())}};
  for (const auto& f : io::list_dir(cfg.model.path))
    if (f.ends_with(".safetensors") || f.ends_with(".json")) key["model"][f] = file_fingerprint(cfg.model.path + "/" + f);
  data::Dataset both = train_set;  // training and held-out records: evaluation reads the cache too
  both.records.insert(both.records.end(), eval_set.records.begin(), eval_set.records.end());
  std::vector<int64_t> lines;
  for (const auto& r : both.records) lines.push_back(r.line);
  cache = RefCache::load_or_build(cfg.train.out_dir + "/ref_logps.safetensors", key.dump(), lines, [&] {
    const auto recs = data::tokenize_dataset(both, *encoder);
    const bool was = policy.state.lora_enabled;
    policy.state.lora_enabled = false;  // LoRA: the base model is the reference (B = 0 at start anyway)
    auto scores = model::score_records(ref ? *ref : policy, recs, cfg.train.batch_prompts);
    policy.state.lora_enabled = was;
    return scores;
  }, log);
}

at::Tensor PreferenceTrainer::Impl::ref_logprobs(const data::Batch& b) {
  if (cache) {  // [B·k] from the cache; prompt-only rows of ragged batches get 0 (never read)
    std::vector<double> v;
    for (int64_t i = 0; i < b.prompts; ++i)
      for (int64_t j = 0; j < b.k; ++j) {
        const int64_t slot = b.response_index[static_cast<size_t>(i)][static_cast<size_t>(j)];
        v.push_back(slot < 0 ? 0.0 : cache->at(b.lines[static_cast<size_t>(i)], slot));
      }
    return at::tensor(v, at::kDouble).to(device, at::kFloat);
  }
  c10::AutoGradMode no_grad(false);
  model::AutocastGuard cast(device, autocast);
  const auto ids = b.ids.to(device), mask = b.mask.to(device), resp = b.response_mask.to(device);
  if (ref) return model::sequence_logprobs(*ref, ids, mask, resp).sum;
  const bool was = policy.state.lora_enabled, training = policy.state.training;
  policy.state.lora_enabled = false;
  policy.state.training = false;
  at::Tensor out = model::sequence_logprobs(policy, ids, mask, resp).sum;
  policy.state.lora_enabled = was;
  policy.state.training = training;
  return out;
}

namespace {

// Per-row values [B·k] (the batch's row order) placed at their response slots of a [B, K] tensor; zeros at
// slots that were not forwarded.
at::Tensor place_rows(const data::Batch& rows, const at::Tensor& per_row, int64_t K) {
  std::vector<int64_t> ri, ci, fi;
  for (int64_t i = 0; i < rows.prompts; ++i)
    for (int64_t j = 0; j < rows.k; ++j) {
      const int64_t slot = rows.response_index[static_cast<size_t>(i)][static_cast<size_t>(j)];
      if (slot < 0) continue;  // a prompt-only row of a ragged batch
      ri.push_back(i), ci.push_back(slot), fi.push_back(i * rows.k + j);
    }
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(per_row.device());
  const at::Tensor r = at::tensor(ri, lopt), c = at::tensor(ci, lopt), f = at::tensor(fi, lopt);
  return at::zeros({rows.prompts, K}, per_row.options()).index_put({r, c}, per_row.index_select(0, f));
}

}  // namespace

PreferenceTrainer::Impl::Forwarded PreferenceTrainer::Impl::forward(data::PreferenceLoader& ld, bool grad,
                                                                   at::Generator& gen, const prefs::LossConfig& lc,
                                                                   bool& exhausted) {
  std::vector<prefs::Selection> sels;
  std::vector<std::vector<double>> rewards;
  auto select = [&](const data::PreferenceRecord& r) {
    at::Tensor u = prefs::draw_uniforms(1, gen);  // [1, 2], drawn for every prompt whatever the method
    rewards.push_back(data::rewards_or_rank(r));
    if (r.responses.size() == 1) throw InputError("line " + std::to_string(r.line) + ": a preference record needs at least 2 responses");
    sels.push_back(select_record(r, lc, u));
    return prefs::read_slots(sels.back(), 0);
  };
  auto b = ld.next(select);
  exhausted = !b;
  Forwarded f;
  if (!b) return f;
  f.rows = std::move(*b);
  const int64_t B = f.rows.prompts, k = f.rows.k;
  int64_t K = 0;
  for (const auto& r : rewards) K = std::max<int64_t>(K, static_cast<int64_t>(r.size()));
  const auto ids = f.rows.ids.to(device), mask = f.rows.mask.to(device), resp = f.rows.response_mask.to(device);
  f.tokens = f.rows.mask.sum().item<int64_t>();
  at::Tensor pol;
  {
    c10::AutoGradMode mode(grad);
    model::AutocastGuard cast(device, autocast);
    policy.state.training = grad;
    pol = model::sequence_logprobs(policy, ids, mask, resp).sum;  // [B·k] fp32
  }
  at::Tensor refl = ref_logprobs(f.rows);                         // [B·k]
  // Place the forwarded responses at their slots of a [B, K] batch; the rest are finite placeholders the
  // loss does not read (the selection reads exactly the forwarded slots; `forwarded` lets it assert so).
  const auto fopt = at::TensorOptions().dtype(at::kFloat).device(device);
  at::Tensor length = at::ones({B, K}, fopt.dtype(at::kDouble).device(at::kCPU));
  at::Tensor reward = at::zeros({B, K}, at::kDouble), valid = at::zeros({B, K}, at::kBool);
  at::Tensor forwarded = at::zeros({B, K}, at::kBool);
  const at::Tensor counts = f.rows.response_mask.sum(1).to(at::kDouble);
  for (int64_t i = 0; i < B; ++i) {
    for (size_t j = 0; j < rewards[static_cast<size_t>(i)].size(); ++j) {
      reward[i][static_cast<int64_t>(j)] = rewards[static_cast<size_t>(i)][j];
      valid[i][static_cast<int64_t>(j)] = true;
    }
    for (int64_t j = 0; j < k; ++j) {
      const int64_t slot = f.rows.response_index[static_cast<size_t>(i)][static_cast<size_t>(j)];
      if (slot < 0) continue;  // a prompt-only row of a ragged batch
      forwarded[i][slot] = true;
      length[i][slot] = std::max(1.0, counts[i * k + j].item<double>());
    }
  }
  f.batch = {place_rows(f.rows, pol, K), place_rows(f.rows, refl, K), length.to(fopt), reward.to(fopt),
             valid.to(device), forwarded};
  f.sel = prefs::stack_selections(sels);
  return f;
}

PreferenceTrainer::Impl::Micro PreferenceTrainer::Impl::micro_step(data::PreferenceLoader& ld, bool grad,
                                                                   at::Generator& gen, const prefs::LossConfig& lc,
                                                                   bool& exhausted) {
  Micro m;
  if (cfg.task == Task::preference) {
    Forwarded f = forward(ld, grad, gen, lc, exhausted);
    if (exhausted) return m;
    m.rows = std::move(f.rows);
    m.tokens = f.tokens;
    // Non-finite log-probs (a diverged model) make a non-finite step, skipped by the guarded update; the loss
    // core would reject them as bad input.
    if (!at::isfinite(at::stack({f.batch.policy_logp.detach(), f.batch.ref_logp})).all().item<bool>()) {
      m.loss = at::full({}, NAN, f.batch.policy_logp.options());
      return m;
    }
    auto res = prefs::preference_loss(f.batch, lc, f.sel);
    m.loss = res.loss;
    m.no_preference = res.no_preference;
    m.accuracy = prefs::mean_over_preferences(res, res.margins.accuracy);
    m.rm_dpo = prefs::mean_over_preferences(res, res.margins.rm_dpo);
    m.rm_rdpo = prefs::mean_over_preferences(res, res.margins.rm_rdpo);
    m.chosen = prefs::mean_over_preferences(res, res.margins.chosen_reward);
    m.rejected = prefs::mean_over_preferences(res, res.margins.rejected_reward);
    return m;
  }
  // SFT: the best response; reward model: BT's best/worst groups or the whole list for PL, selected with the
  // preference losses' tie rule (one selection for the forward and the loss, as above).
  prefs::LossConfig rm_lc;
  rm_lc.preference = cfg.loss.preference == prefs::Preference::pl ? prefs::Preference::pl : prefs::Preference::bt;
  rm_lc.pair_rule = prefs::PairRule::max_min;
  rm_lc.ties = cfg.loss.ties;
  std::vector<prefs::Selection> sels;
  int64_t K = 0;
  auto select = [&](const data::PreferenceRecord& r) {
    if (cfg.task == Task::sft) return select_best(r);
    sels.push_back(select_record(r, rm_lc, at::Tensor()));
    K = std::max<int64_t>(K, static_cast<int64_t>(r.responses.size()));
    return prefs::read_slots(sels.back(), 0);
  };
  auto b = ld.next(select);
  exhausted = !b;
  if (!b) return m;
  m.rows = std::move(*b);
  const auto ids = m.rows.ids.to(device), mask = m.rows.mask.to(device);
  m.tokens = m.rows.mask.sum().item<int64_t>();
  c10::AutoGradMode mode(grad);
  model::AutocastGuard cast(device, autocast);
  policy.state.training = grad;
  if (cfg.task == Task::sft) {
    // Token-level NLL over every response token of the batch (TRL's SFT loss with completion-only masking).
    auto lp = model::sequence_logprobs(policy, ids, mask, m.rows.response_mask.to(device));
    m.loss = -lp.sum.sum() / lp.count.sum().clamp_min(1).to(lp.sum.scalar_type());
    return m;
  }
  at::Tensor rows = policy.scores(ids, mask).select(1, 0).to(at::kFloat);              // [B·k]
  at::Tensor scores = rows.view({m.rows.prompts, m.rows.k});                               // [B, k] row order
  const prefs::Selection sel = prefs::stack_selections(sels);
  at::Tensor ranked = place_rows(m.rows, rows, K).gather(1, sel.order.to(device));        // [B, K] rank order
  m.loss = rm_lc.preference == prefs::Preference::pl ? rm_loss_pl(ranked, sel) : rm_loss_bt(ranked, sel, cfg.rm_margin);
  m.no_preference = sel.has_pref.numel() - sel.has_pref.sum().item<int64_t>();
  m.accuracy = pairwise_accuracy(scores, m.rows.rewards);
  if (rm_lc.preference == prefs::Preference::bt) {  // the reported pair's scores, over prompts with a preference
    const at::Tensor keep = sel.has_pref.to(device).to(at::kFloat);
    const double n = std::max(1.0, keep.sum().item<double>());
    m.chosen = (prefs::at_rank(ranked, sel.chosen.to(device)) * keep).sum().item<double>() / n;
    m.rejected = (prefs::at_rank(ranked, sel.rejected.to(device)) * keep).sum().item<double>() / n;
  }
  return m;
}

StepLog PreferenceTrainer::Impl::train_step() {
  const auto t0 = std::chrono::steady_clock::now();
  StepLog s;
  s.step = step + 1;  // steps are numbered by completion: step 1 is the first update
  prefs::LossConfig lc = cfg.loss;
  lc.gamma = prefs::gamma_at(cfg.gamma, step, total);
  s.gamma = lc.gamma;
  s.lr = lr_at(cfg.train.schedule, cfg.train.lr, step, warmup, total);
  bool finite = true;
  int64_t tokens = 0, n = 0, prompts = 0;
  for (int64_t a = 0; a < cfg.train.grad_accum; ++a) {
    bool exhausted = false;
    Micro f = micro_step(*loader, true, sampler, lc, exhausted);
    if (exhausted) {
      loader->next_epoch();
      f = micro_step(*loader, true, sampler, lc, exhausted);
      if (exhausted) throw InternalError("an epoch with no batches");
    }
    const double loss = f.loss.item<double>();
    finite = finite && std::isfinite(loss);
    if (finite) (f.loss / static_cast<double>(cfg.train.grad_accum)).backward();
    s.loss += loss / static_cast<double>(cfg.train.grad_accum);
    s.accuracy += f.accuracy;
    s.rm_dpo += f.rm_dpo;
    s.rm_rdpo += f.rm_rdpo;
    s.chosen_reward += f.chosen;
    s.rejected_reward += f.rejected;
    s.lines.insert(s.lines.end(), f.rows.lines.begin(), f.rows.lines.end());
    s.responses.insert(s.responses.end(), f.rows.response_index.begin(), f.rows.response_index.end());
    tokens += f.tokens;
    s.no_preference += f.no_preference;
    prompts += f.rows.prompts;
    ++n;
  }
  for (double* v : {&s.accuracy, &s.rm_dpo, &s.rm_rdpo, &s.chosen_reward, &s.rejected_reward}) *v /= static_cast<double>(n);
  s.epoch = loader->epoch();
  // A step whose prompts all tie carries no preference: no AdamW step (momentum and weight decay would
  // still move the weights). Never apply a non-finite step: parameters and optimizer state stay as they were.
  s.no_update = cfg.task != Task::sft && s.no_preference == prompts;
  const UpdateOutcome u = s.no_update ? UpdateOutcome{0.0, false}
                                      : guarded_update(*opt, s.lr, cfg.train.max_grad_norm, finite);
  if (s.no_update)
    for (auto p : opt->params()) p.mutable_grad() = at::Tensor();
  s.grad_norm = u.grad_norm;
  s.skipped = !u.applied && !s.no_update;
  bad_steps = s.skipped ? bad_steps + 1 : 0;
  ++step;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.tokens_per_s = static_cast<double>(tokens) / std::max(secs, 1e-9);
  s.peak_gib = peak_gib(device);
  return s;
}

EvalLog PreferenceTrainer::Impl::evaluate() {
  EvalLog e;
  e.step = step;
  if (eval_set.records.empty()) return e;
  data::PreferenceLoader ld(eval_set, *encoder, pad_id, {cfg.train.batch_prompts, 0, false, data::PadSide::right});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.train.seed + 7);  // the same draws at every evaluation
  prefs::LossConfig lc = cfg.loss;
  lc.gamma = prefs::gamma_at(cfg.gamma, std::min(step, total - 1), total);  // the last step's γ after training
  int64_t n = 0;
  c10::AutoGradMode no_grad(false);
  while (true) {
    bool exhausted = false;
    Micro f = micro_step(ld, false, gen, lc, exhausted);
    if (exhausted) break;
    const double w = static_cast<double>(f.rows.prompts);
    e.loss += f.loss.item<double>() * w;
    e.accuracy += f.accuracy * w;
    e.rm_dpo += f.rm_dpo * w;
    e.rm_rdpo += f.rm_rdpo * w;
    n += f.rows.prompts;
  }
  for (double* v : {&e.loss, &e.accuracy, &e.rm_dpo, &e.rm_rdpo}) *v /= static_cast<double>(std::max<int64_t>(n, 1));
  return e;
}

namespace {

// Settings a resumed run must share with its checkpoint: everything that shapes the model, the data a step
// sees, or the loss. What may change on resume: train.lr, schedule, warmup, AdamW betas/eps/decay, max_grad_norm,
// save_every, keep_last, eval_every, stop_after, max_bad_steps, ref_cache, model.device, dtype/autocast,
// grad_checkpointing (docs/training.md).
json compat_fields(const TrainConfig& c) {
  const auto& l = c.loss;
  return {{"task", to_string(c.task)},
          {"model.path", c.model.path},
          {"lora.enabled", c.use_lora},
          {"lora.rank", c.lora.rank},
          {"lora.alpha", c.lora.alpha},
          {"lora.dropout", c.lora.dropout},
          {"lora.rslora", c.lora.rslora},
          {"lora.targets", c.lora.targets},
          {"data.path", c.data.path},
          {"data.max_prompt_length", c.data.max_prompt_length},
          {"data.max_length", c.data.max_length},
          {"loss.preference", std::string(prefs::to_string(l.preference))},
          {"loss.objective", std::string(prefs::to_string(l.objective))},
          {"loss.beta", l.beta},
          {"loss.ties", std::string(prefs::to_string(l.ties))},
          {"loss.pair_rule", std::string(prefs::to_string(l.pair_rule))},
          {"loss.n_factor", std::string(prefs::to_string(l.n_factor))},
          {"loss.label_smoothing", l.label_smoothing},
          {"loss.robust", l.robust},
          {"loss.exo_epsilon", l.exo_epsilon},
          {"loss.simpo_margin", l.simpo_margin},
          {"loss.rdpo_alpha", l.rdpo_alpha},
          {"loss.multi_preferred", l.multi_preferred},
          {"loss.multi_lambda", l.multi_lambda},
          {"gamma.schedule", std::string(prefs::to_string(c.gamma.kind))},
          {"gamma.start", c.gamma.start},
          {"gamma.end", c.gamma.end},
          {"gamma.interval", c.gamma.interval},
          {"rm.margin", c.rm_margin},
          {"train.batch_prompts", c.train.batch_prompts},
          {"train.grad_accum", c.train.grad_accum},
          {"train.seed", c.train.seed},
          {"train.max_steps", c.train.max_steps},
          {"train.epochs", c.train.epochs}};
}

}  // namespace

void PreferenceTrainer::Impl::save(std::ostream& log) {
  write_checkpoint(cfg.train.out_dir, step, [&](const std::string& dir) {
    if (cfg.use_lora) {
      model::save_lora(policy, cfg.lora, dir + "/adapter");
    } else {
      model::save_model(policy, model_config_json(), dir + "/model");
      for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
        if (io::file_exists(cfg.model.path + "/" + f)) io::copy_file(cfg.model.path + "/" + f, dir + "/model/" + f);
    }
    io::save_safetensors(dir + "/optimizer.safetensors", opt->state());
    std::map<std::string, at::Tensor> rng{{"sampler", generator_state(sampler)},
                                          {"torch_cpu", at::detail::getDefaultCPUGenerator().get_state()}};
    if (device.is_cuda()) rng["torch_cuda"] = at::globalContext().defaultGenerator(device).get_state();
    io::save_safetensors(dir + "/rng.safetensors", rng);
    json state = {{"step", step},
                  {"total_steps", total},
                  {"epoch", loader->epoch()},
                  {"position", loader->position()},
                  {"bad_steps", bad_steps},
                  {"compat", compat_fields(cfg)},
                  {"config", config_text}};
    io::write_json_file(dir + "/trainer_state.json", state);
  }, cfg.train.keep_last);
  log << "saved " << checkpoint_path(cfg.train.out_dir, step) << "\n";
}

void PreferenceTrainer::Impl::restore(const std::string& dir) {
  const json state = io::read_json_file(dir + "/trainer_state.json");
  const json now = compat_fields(cfg);
  for (auto it = now.begin(); it != now.end(); ++it) {
    if (!state.at("compat").contains(it.key())) continue;  // a checkpoint of an older hps did not record it
    const json& was = state.at("compat").at(it.key());
    if (was != it.value())
      throw ConfigError("cannot resume from " + dir + ": " + it.key() + " was " + was.dump() + ", now " +
                        it.value().dump() + " (use another train.out_dir for a different run)");
  }
  if (cfg.use_lora) {
    model::load_lora(policy, dir + "/adapter");
    policy.set_requires_grad(false, true);
  } else {
    model::Decoder m = model::load_model(dir + "/model", {device, policy.dtype()});
    m.set_requires_grad(true, true);
    m.state.grad_checkpointing = policy.state.grad_checkpointing;
    policy = std::move(m);
  }
  opt = std::make_unique<AdamW>(policy.trainable_parameters(), cfg.train.adamw);
  auto f = io::SafetensorsFile::open(dir + "/optimizer.safetensors");
  std::map<std::string, at::Tensor> s;
  for (const auto& t : f.tensors()) s[t.name] = f.get(t.name);
  opt->load_state(s);
  auto r = io::SafetensorsFile::open(dir + "/rng.safetensors");
  sampler.set_state(r.get("sampler").clone());
  at::Generator cpu = at::detail::getDefaultCPUGenerator();  // a handle: set_state reaches the global one
  cpu.set_state(r.get("torch_cpu").clone());
  if (device.is_cuda() && r.contains("torch_cuda")) {
    at::Generator cuda = at::globalContext().defaultGenerator(device);
    cuda.set_state(r.get("torch_cuda").clone());
  }
  step = state.at("step").get<int64_t>();
  bad_steps = state.at("bad_steps").get<int64_t>();
  loader->seek(state.at("epoch").get<int64_t>(), state.at("position").get<size_t>());
}

std::vector<StepLog> PreferenceTrainer::run(bool resume, std::ostream& log) {
  Impl& m = *impl_;
  io::make_dirs(m.cfg.train.out_dir);
  // Before any restore: the cache holds reference (not policy) values.
  if (m.cfg.train.ref_cache) m.build_ref_cache(log);
  if (resume) {
    if (auto dir = latest_checkpoint(m.cfg.train.out_dir)) {
      m.restore(*dir);
      log << "resumed from " << *dir << " at step " << m.step << "/" << m.total << "\n";
    } else {
      log << "no complete checkpoint in " << m.cfg.train.out_dir << ": starting fresh\n";
    }
  }
  // Metrics of steps after the resumed one are dropped (they are about to be recomputed).
  const std::string metrics_path = m.cfg.train.out_dir + "/metrics.jsonl";
  {
    std::vector<std::string> keep;
    if (resume && io::file_exists(metrics_path)) {
      std::ifstream in(metrics_path);
      for (std::string line; std::getline(in, line);)
        if (!line.empty() && json::parse(line).value("step", int64_t{0}) <= m.step) keep.push_back(line);
    }
    io::write_file_atomic(metrics_path, [&](std::ostream& o) {
      for (const auto& l : keep) o << l << "\n";
    });
  }
  std::ofstream metrics(metrics_path, std::ios::app);
  log << to_string(m.cfg.task) << " training: " << m.train_set.records.size() << " prompts ("
      << m.eval_set.records.size() << " held out), " << m.total << " steps, ";
  if (m.cfg.task == Task::preference)
    log << prefs::to_string(m.cfg.loss.preference) << " × " << prefs::to_string(m.cfg.loss.objective);
  else if (m.cfg.task == Task::reward)
    log << "reward model, " << prefs::to_string(m.cfg.loss.preference) << " loss"
        << (m.converted_from.empty() ? "" : " (score head added to " + m.converted_from + ")");
  else
    log << "SFT on the best responses";
  log << (m.cfg.use_lora ? ", LoRA" : ", full fine-tuning") << "\n";
  if (!m.skipped.empty()) {
    // Never silently: the count and the first reasons here, every one in OUT/skipped_records.jsonl.
    const std::string list = m.cfg.train.out_dir + "/skipped_records.jsonl";
    io::write_file_atomic(list, [&](std::ostream& o) {
      for (const auto& r : m.skipped) o << json{{"line", r.line}, {"reason", r.reason}}.dump() << "\n";
    });
    log << "skipped " << m.skipped.size() << " bad records of " << m.cfg.data.path << " (data.on_bad_record = skip; all in "
        << list << ")\n";
    for (size_t i = 0; i < std::min<size_t>(3, m.skipped.size()); ++i)
      log << "  line " << m.skipped[i].line << ": " << m.skipped[i].reason << "\n";
  }
  std::vector<StepLog> out;
  int64_t ran = 0, no_preference = 0;
  // Never silently: prompts whose responses all tie train nothing (loss.ties = exclude); the total is printed.
  auto report_ties = [&] {
    if (no_preference > 0)
      log << no_preference << " prompt(s) in this run's steps had responses of one reward only (loss.ties = exclude): "
          << "no preference, no loss term (per step: 'no_preference' in " << metrics_path << ")\n";
  };
  const bool eval_on = !m.eval_set.records.empty();
  const auto started = std::chrono::steady_clock::now();
  // On a terminal one line is redrawn (a progress bar with ETA); otherwise plain lines for logs.
  const bool tty = &log == &std::cout && ::isatty(STDOUT_FILENO);
  while (m.step < m.total) {
    StepLog s = m.train_step();
    ++ran;
    json j = {{"step", s.step},           {"epoch", s.epoch},         {"loss", s.loss},
              {"accuracy", s.accuracy},   {"rm_dpo", s.rm_dpo},       {"rm_rdpo", s.rm_rdpo},
              {"chosen_reward", s.chosen_reward}, {"rejected_reward", s.rejected_reward},
              {"lr", s.lr},               {"gamma", s.gamma},         {"grad_norm", std::isfinite(s.grad_norm) ? json(s.grad_norm) : json(nullptr)},
              {"tokens_per_s", s.tokens_per_s}, {"peak_gib", s.peak_gib}, {"skipped", s.skipped},
              {"no_preference", s.no_preference}, {"no_update", s.no_update},
              {"lines", s.lines},         {"responses", s.responses}};
    metrics << j.dump() << "\n" << std::flush;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const auto eta = static_cast<int64_t>(elapsed / static_cast<double>(ran) * static_cast<double>(m.total - m.step));
    if (tty) {
      const int64_t width = 24, filled = width * m.step / std::max<int64_t>(m.total, 1);
      log << "\r[" << std::string(static_cast<size_t>(filled), '=') << std::string(static_cast<size_t>(width - filled), ' ')
          << "] ";
    }
    log << "step " << s.step << "/" << m.total << "  loss " << s.loss;
    if (m.cfg.task != Task::sft) log << "  acc " << s.accuracy;
    log << "  lr " << s.lr;
    if (m.cfg.task == Task::preference) log << "  gamma " << s.gamma;
    no_preference += s.no_preference;
    if (s.no_preference > 0) log << "  tied " << s.no_preference;
    log << "  ETA " << eta / 60 << "m" << (eta % 60 < 10 ? "0" : "") << eta % 60 << "s"
        << (s.skipped ? "  SKIPPED (non-finite)" : "") << (s.no_update ? "  NO UPDATE (every prompt tied)" : "");
    log << (tty && !s.skipped && m.step < m.total ? "   " : "\n") << std::flush;
    out.push_back(std::move(s));
    if (m.bad_steps >= m.cfg.train.max_bad_steps)
      throw NumericError(std::to_string(m.bad_steps) + " consecutive steps had a non-finite loss or gradient (last: lines " +
                         json(out.back().lines).dump() + "); no update was applied for them. Lower train.lr or check the data");
    if (eval_on && m.cfg.train.eval_every > 0 && m.step % m.cfg.train.eval_every == 0) {
      m.evals.push_back(m.evaluate());
      log << "eval step " << m.step << "  loss " << m.evals.back().loss << "  acc " << m.evals.back().accuracy << "\n";
    }
    const bool stop = stop_requested().load() || (m.cfg.train.stop_after > 0 && ran >= m.cfg.train.stop_after);
    if (stop || m.step == m.total || (m.cfg.train.save_every > 0 && m.step % m.cfg.train.save_every == 0)) m.save(log);
    if (stop) {
      report_ties();
      log << "stopped at step " << m.step << " (resume with --resume)\n";
      return out;
    }
  }
  report_ties();
  if (eval_on) {
    m.evals.push_back(m.evaluate());
    log << "eval step " << m.step << "  loss " << m.evals.back().loss << "  acc " << m.evals.back().accuracy << "\n";
  }
  return out;
}

}  // namespace hps::train

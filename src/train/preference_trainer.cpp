#include "train/preference_trainer.hpp"

#include <ATen/DeviceAccelerator.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <limits>
#include <optional>

#include "core/error.hpp"
#include "core/seed.hpp"
#include "data/batching.hpp"
#include "dist/grad_sync.hpp"
#include "dist/world.hpp"
#include "io/atomic_file.hpp"
#include "model/load.hpp"
#include "model/lora.hpp"
#include "model/score_records.hpp"
#include "text/chat.hpp"
#include "text/text_setup.hpp"
#include "text/tokenizer.hpp"
#include "train/optimizer.hpp"
#include "train/ref_cache.hpp"
#include "train/reward_model.hpp"
#include "train/run_checkpoint.hpp"
#include "train/trainer_state.hpp"

namespace hps::train {

std::atomic<bool>& PreferenceTrainer::stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

namespace {

double peak_gib(const at::Device& d) {
  if (!d.is_cuda()) return 0.0;
  return static_cast<double>(at::accelerator::getDeviceStats(d.index()).allocated_bytes[0].peak) / 1073741824.0;
}

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
  std::string converted_from;         // the causal-LM architecture a reward model was made from
  std::unique_ptr<AdamW> opt;
  std::optional<RefCache> cache;  // train.ref_cache: reference log-probs of every training response
  const dist::World& world = dist::world();  // one process, or a data-parallel group (torchrun)
  int64_t step = 0, bad_steps = 0, total = 0, warmup = 0;
  std::vector<EvalLog> evals;
  // Data-parallel: gradients averaged in buckets while the step's last backward runs (c10d's Reducer). Declared
  // after the optimizer and the policy: it unhooks their parameters before they go.
  dist::GradSync grad_sync;
  int64_t pad_id = 0;
  std::string text_warning;  // no chat template: the hh fallback, said when the run starts
  nlohmann::json inputs;  // fingerprints of the data and the base model's files (input_fingerprints)

  void setup();
  // Size + CRC of the data file and of every .safetensors / .json of the base model, computed once per run:
  // a resumed run must read the same inputs (trainer_state.cpp checks), and they key the reference cache.
  const nlohmann::json& input_fingerprints() {
    if (inputs.is_null()) {
      inputs = {{"data", io::file_fingerprint(cfg.data.path)}, {"model", nlohmann::json::object()}};
      for (const auto& f : io::list_dir(cfg.model.path))
        if (f.ends_with(".safetensors") || f.ends_with(".json"))
          inputs["model"][f] = io::file_fingerprint(cfg.model.path + "/" + f);
    }
    return inputs;
  }
  void split_data();
  void load_models(const model::LoadOptions& lo);
  bool ref_cache_pays(std::ostream& log) const;
  void build_ref_cache(std::ostream& log);
  StepModels models() {
    return {policy,   ref ? &*ref : nullptr, cache ? &*cache : nullptr,  device, autocast, layout(),
            cfg.train.max_tokens_per_micro_batch, [this](double w) { return backward_scale(w); }};
  }
  // What a micro-batch's loss (a mean over its weight w) is multiplied by for backward: 1 / grad_accum; in a
  // data-parallel group this rank's share of the global mean, w / (the ranks' total) × ranks / grad_accum
  // (the gradients are averaged over the ranks after). A collective: every rank calls it once per micro-step.
  double backward_scale(double weight) const {
    const auto accum = static_cast<double>(cfg.train.grad_accum);
    if (!world.distributed()) return 1.0 / accum;
    const double total = world.sum({weight})[0];
    return total > 0 ? weight * static_cast<double>(world.size()) / total / accum : 0.0;
  }
  model::Layout layout() const { return cfg.train.packing ? model::Layout::packed : model::Layout::padded; }
  RunState run_state() {
    return {policy, opt, *loader, step, bad_steps, world.size(), input_fingerprints(), data::to_string(train_set.format)};
  }
  // One micro-batch of the configured task; nullopt when the loader's epoch is exhausted.
  std::optional<MicroStep> micro_step(data::PreferenceLoader& ld, bool grad, uint64_t draw_seed,
                                      const prefs::LossConfig& lc);
  void sync_parameters();
  void start_grad_sync(std::ostream& log);
  bool backward(const at::Tensor& loss, bool last_on_every_rank);
  void all_reduce_gradients();
  StepLog train_step();
  EvalLog evaluate();
  void save(std::ostream& log);
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
  at::manual_seed(derive_seed(cfg.train.seed, SeedPurpose::torch_global, static_cast<uint64_t>(world.rank())));
  device = dist::local_device(cfg.model.device);  // "cuda": cuda:LOCAL_RANK under torchrun
  if (device.is_cuda() && !device.has_index()) device = at::Device(at::kCUDA, 0);
  auto ts = text::load_text_setup(cfg.model.tokenizer, cfg.data.chat_format);
  tok = std::move(ts.tok);
  chat = ts.chat;
  text_warning = std::move(ts.warning);
  split_data();
  model::LoadOptions lo{device, std::nullopt};
  if (!cfg.model.dtype.empty()) lo.dtype = model::parse_dtype(cfg.model.dtype);
  load_models(lo);
  pad_id = tok->pad_id().value_or(policy.config.pad_token_id.value_or(0));
  encoder = std::make_unique<data::Encoder>(*tok, chat, data::EncodeOptions{cfg.data.max_prompt_length, cfg.data.max_length, true});
  // Data-parallel: train.batch_prompts per process; each step's global batch is batch_prompts × world size.
  const data::LoaderOptions lo_train{cfg.train.batch_prompts, derive_seed(cfg.train.seed, SeedPurpose::data_order), true,
                                     data::PadSide::right, world.rank(), world.size()};
  loader = std::make_unique<data::PreferenceLoader>(train_set, *encoder, pad_id, lo_train);
  const int64_t global_batch = cfg.train.batch_prompts * world.size();
  const int64_t micro = (static_cast<int64_t>(train_set.records.size()) + global_batch - 1) / global_batch;
  const int64_t per_epoch = std::max<int64_t>(1, micro / cfg.train.grad_accum);
  if (cfg.train.max_steps <= 0 && cfg.train.epochs > std::numeric_limits<int64_t>::max() / per_epoch)
    throw ConfigError("train.epochs = " + std::to_string(cfg.train.epochs) + " × " + std::to_string(per_epoch) +
                      " steps per epoch overflows the step count; set fewer epochs or train.max_steps");
  total = cfg.train.max_steps > 0 ? cfg.train.max_steps : cfg.train.epochs * per_epoch;
  warmup = static_cast<int64_t>(cfg.train.warmup_ratio * static_cast<double>(total));
  sync_parameters();
  opt = std::make_unique<AdamW>(policy.trainable_parameters(), cfg.train.adamw);
}

// The Reducer hooks the optimizer's parameters as they are now: called once they are final (after a resume,
// which loads new parameter tensors). Every rank calls it.
void PreferenceTrainer::Impl::start_grad_sync(std::ostream& log) {
  if (!world.grouped()) return;
  if (cfg.train.ddp_bucket_cap_mb > 0) {
    std::vector<std::string> names;
    for (const auto& [name, p] : policy.named_parameters())
      if (p.requires_grad()) names.push_back(name);
    const auto cap = static_cast<int64_t>(cfg.train.ddp_bucket_cap_mb * 1024 * 1024);
    grad_sync = dist::GradSync(world, opt->params(), std::move(names), std::max<int64_t>(cap, 1));
  }
  log << "gradient all-reduce: "
      << (grad_sync.active() ? grad_sync.describe() : "after backward, per dtype (train.ddp_bucket_cap_mb = 0)") << "\n";
}

// Every rank starts from rank 0's trainable parameters (they agree already when the files and seeds do;
// this makes it so).
void PreferenceTrainer::Impl::sync_parameters() {
  if (!world.distributed()) return;
  auto params = policy.trainable_parameters();
  c10::AutoGradMode no_grad(false);
  // Test hook (train.ddp_equivalence): HPS_TEST_PERTURB_RANK=<r> moves rank r's parameters before the
  // broadcast, as if it had loaded other weights; the run must still equal one process's.
  if (const char* r = std::getenv("HPS_TEST_PERTURB_RANK"); r && std::to_string(world.rank()) == r)
    for (auto& p : params) p.add_(1.0);
  world.broadcast(params, 0);
}

// loss.backward(). The step's last backward, when every rank runs one, averages its gradients (and those
// accumulated before) bucket by bucket while it runs (returns true); otherwise — a rank with nothing to
// backpropagate, token-budget chunks — all_reduce_gradients averages them after the step's backward passes.
bool PreferenceTrainer::Impl::backward(const at::Tensor& loss, bool last_on_every_rank) {
  const bool synced = last_on_every_rank && grad_sync.active();
  // The Reducer's hooks sit on parameter tensors: other tensors (a resume loads new ones) would never fire
  // them and backward would end unreduced, silently.
  if (synced && !grad_sync.covers(opt->params()))
    throw InternalError("the gradient all-reduce hooks other tensors than the optimizer's parameters");
  if (synced)
    grad_sync.backward(loss);
  else
    loss.backward();
  return synced;
}

// The mean of the ranks' gradients (each already weighted: see train_step); a parameter one rank did not
// reach (an empty micro-batch) contributes zeros.
void PreferenceTrainer::Impl::all_reduce_gradients() {
  std::vector<at::Tensor> grads;
  for (auto& p : opt->params()) {
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    grads.push_back(p.mutable_grad());
  }
  world.all_reduce_sum(grads);
  for (auto& g : grads) g.div_(static_cast<double>(world.size()));
}

void PreferenceTrainer::Impl::split_data() {
  data::Dataset all = data::read_dataset(cfg.data.path, cfg.data.options);
  if (all.records.empty()) throw InputError(cfg.data.path + ": no usable records");
  skipped = all.skipped;
  // Deterministic held-out split: the last eval_fraction of a seeded permutation.
  const auto order = data::epoch_order(all.records.size(), derive_seed(cfg.train.seed, SeedPurpose::eval_split), -1);
  const auto n_eval = static_cast<size_t>(cfg.data.eval_fraction * static_cast<double>(all.records.size()));
  train_set.path = eval_set.path = all.path;
  train_set.format = eval_set.format = all.format;
  train_set.detected_because = eval_set.detected_because = all.detected_because;
  for (size_t i = 0; i < order.size(); ++i)
    (i < order.size() - n_eval ? train_set : eval_set).records.push_back(all.records[order[i]]);
}

// The policy (with LoRA adapters or trainable weights; a score head added for a reward model made from a
// causal LM) and, for full-fine-tuning preference training, the frozen reference.
void PreferenceTrainer::Impl::load_models(const model::LoadOptions& lo) {
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
  if (cfg.task == Task::reward && policy.config.head == model::Head::causal_lm)
    converted_from = to_reward_model(policy, derive_seed(cfg.train.seed, SeedPurpose::score_head));
  if (cfg.task != Task::reward && policy.config.head != model::Head::causal_lm)
    throw ConfigError(cfg.model.path + " is a reward model (" + policy.config.architecture + "); " + to_string(cfg.task) +
                      " training needs a causal LM");
  if (cfg.use_lora) {
    model::add_lora(policy, cfg.lora, derive_seed(cfg.train.seed, SeedPurpose::lora_init));
  } else {
    policy.set_requires_grad(true, true);
    if (cfg.task == Task::preference) {  // SFT and reward models have no reference
      ref = model::load_model(cfg.model.path, lo);
      ref->set_requires_grad(false, false);
    }
  }
}

// train.ref_cache = auto: the cache scores all K responses of every record (training and held-out) once; the
// steps forward the selected ones (2 per prompt for BT and sampled HPS, all K for PL and HPS-full) of every
// prompt they read, epoch after epoch, and evaluation its held-out prompts. On when the first is no more work.
bool PreferenceTrainer::Impl::ref_cache_pays(std::ostream& log) const {
  const bool all_k = cfg.loss.preference == prefs::Preference::pl || cfg.loss.preference == prefs::Preference::hps_full;
  auto forwarded = [&](const data::Dataset& d, double& cached) {
    double f = 0;
    for (const auto& r : d.records) {
      const auto k = static_cast<double>(r.responses.size());
      cached += k, f += all_k ? k : std::min(k, 2.0);
    }
    return f;
  };
  double cached = 0;
  const double per_epoch = forwarded(train_set, cached), held_out = forwarded(eval_set, cached);
  const double prompts_read = static_cast<double>(total * cfg.train.batch_prompts * cfg.train.grad_accum * world.size());
  const double evals = eval_set.records.empty() ? 0.0
                       : 1.0 + (cfg.train.eval_every > 0 ? static_cast<double>(total / cfg.train.eval_every) : 0.0);
  const double steps_forward =
      prompts_read * per_epoch / static_cast<double>(train_set.records.size()) + evals * held_out;
  const bool pays = cached <= steps_forward;
  log << "reference log-prob cache (train.ref_cache = auto): " << (pays ? "on" : "off") << ": " << cached
      << " responses scored once " << (pays ? "instead of " : "vs ") << std::llround(steps_forward)
      << " reference forwards in the steps\n";
  return pays;
}

void PreferenceTrainer::Impl::build_ref_cache(std::ostream& log) {
  // The key: every file the reference values depend on, plus the settings that shape the token ids.
  nlohmann::json key = {{"tokenizer", io::file_fingerprint(cfg.model.tokenizer + "/tokenizer.json")},
                        {"data", input_fingerprints()["data"]},
                        {"model", input_fingerprints()["model"]},
                        {"chat_format", text::to_string(chat.format)},
                        {"default_system", chat.default_system},
                        {"max_prompt_length", cfg.data.max_prompt_length},
                        {"max_length", cfg.data.max_length},
                        {"format", data::to_string(train_set.format)},
                        {"pku_ranking", cfg.data.options.pku_ranking == data::PkuRanking::helpful ? "helpful" : "safe"},
                        {"dtype", model::dtype_to_hf(policy.dtype())}};
  data::Dataset both = train_set;  // training and held-out records: evaluation reads the cache too
  both.records.insert(both.records.end(), eval_set.records.begin(), eval_set.records.end());
  std::vector<int64_t> lines;
  for (const auto& r : both.records) lines.push_back(r.line);
  auto score = [&] {  // every record, in shards under torchrun
    const auto recs = data::tokenize_dataset(both, *encoder);
    model::StateGuard keep(policy);
    policy.state.lora_enabled = false;  // LoRA: the base model is the reference (B = 0 at start anyway)
    return model::score_records_sharded(ref ? *ref : policy, recs, cfg.train.batch_prompts, layout(), world);
  };
  const std::string path = cfg.train.out_dir + "/ref_logps.safetensors";
  if (!world.distributed()) {
    cache = RefCache::load_or_build(path, key.dump(), lines, score, log);
    return;
  }
  // Data-parallel: when rank 0's file is not current, every rank scores its contiguous share of the records
  // and rank 0 writes them merged in record order; then every rank reads the file.
  std::vector<model::RecordLogprobs> merged;
  if (world.any(world.is_main() && !RefCache::is_current(path, key.dump()))) {
    merged = score();
    log << "reference log-prob cache: scored in " << world.size() << " shards\n";
  }
  if (world.is_main()) cache = RefCache::load_or_build(path, key.dump(), lines, [&] { return merged; }, log);
  world.barrier();
  if (!world.is_main())
    cache = RefCache::load_or_build(path, key.dump(), lines, [&]() -> std::vector<model::RecordLogprobs> {
      throw InternalError("the reference cache rank 0 wrote is not current");
    }, log);
}

std::optional<MicroStep> PreferenceTrainer::Impl::micro_step(data::PreferenceLoader& ld, bool grad, uint64_t draw_seed,
                                                             const prefs::LossConfig& lc) {
  const StepModels m = models();
  switch (cfg.task) {
    case Task::preference: return preference_step(m, ld, grad, draw_seed, lc);
    case Task::sft: return sft_step(m, ld, grad);
    case Task::reward: return reward_step(m, ld, grad, cfg.loss, cfg.rm_margin);
  }
  throw InternalError("unknown training task");
}

namespace {

// What one micro-step adds to its step's log. A data-parallel step adds the ranks' sums (one collective per
// micro-step, which also decides the loss weights before backward), so every rank logs and decides the same.
struct MicroTotals {
  double weight = 0, nonfinite = 0, loss = 0, accuracy = 0, rm_dpo = 0, rm_rdpo = 0, chosen = 0, rejected = 0;
  double no_preference = 0, prompts = 0, tokens = 0;
  double backward = 0;  // ranks whose loss has a graph to backpropagate (each ran backward already when chunked)
};

MicroTotals totals_of(const MicroStep& f, double loss, const dist::World& world) {
  MicroTotals t{f.weight, std::isfinite(loss) ? 0.0 : 1.0, loss, f.accuracy, f.rm_dpo, f.rm_rdpo, f.chosen, f.rejected,
                static_cast<double>(f.no_preference), static_cast<double>(f.rows.prompts), static_cast<double>(f.tokens),
                f.loss.requires_grad() ? 1.0 : 0.0};
  if (!world.distributed()) return t;
  // Metrics are means over the weight: sum value × weight over the ranks, then divide by the total weight.
  const double w = t.weight;
  const auto v = world.sum({w, t.nonfinite, std::isfinite(loss) ? loss * w : 0.0, t.accuracy * w, t.rm_dpo * w,
                            t.rm_rdpo * w, t.chosen * w, t.rejected * w, t.no_preference, t.prompts, t.tokens, t.backward});
  const double W = v[0] > 0 ? v[0] : 1.0;
  return {v[0], v[1], v[2] / W, v[3] / W, v[4] / W, v[5] / W, v[6] / W, v[7] / W, v[8], v[9], v[10], v[11]};
}

// The micro-batch's source lines and forwarded slots into the step's log; in a group, every rank's in rank
// order (the global batch's order, as one process logs it).
void append_rows(StepLog& s, const data::Batch& rows, const dist::World& world) {
  if (!world.distributed()) {
    s.lines.insert(s.lines.end(), rows.lines.begin(), rows.lines.end());
    s.responses.insert(s.responses.end(), rows.response_index.begin(), rows.response_index.end());
    return;
  }
  for (const std::string& part : world.gather(nlohmann::json{{"l", rows.lines}, {"r", rows.response_index}}.dump())) {
    const auto j = nlohmann::json::parse(part);
    for (const auto& l : j.at("l")) s.lines.push_back(l.get<int64_t>());
    for (const auto& r : j.at("r")) s.responses.push_back(r.get<std::vector<int64_t>>());
  }
}

}  // namespace

StepLog PreferenceTrainer::Impl::train_step() {
  const auto t0 = std::chrono::steady_clock::now();
  StepLog s;
  s.step = step + 1;  // steps are numbered by completion: step 1 is the first update
  prefs::LossConfig lc = cfg.loss;
  lc.gamma = prefs::gamma_at(cfg.gamma, step, total);
  s.gamma = lc.gamma;
  s.lr = lr_at(cfg.train.schedule, cfg.train.lr, step, warmup, total);
  const uint64_t draws = derive_seed(cfg.train.seed, SeedPurpose::slot_draws, static_cast<uint64_t>(step));
  const auto accum = static_cast<double>(cfg.train.grad_accum);
  bool finite = true, synced = false;
  double tokens = 0, prompts = 0, no_preference = 0;
  for (int64_t a = 0; a < cfg.train.grad_accum; ++a) {
    auto f = micro_step(*loader, true, draws, lc);
    if (!f) {
      loader->next_epoch();
      f = micro_step(*loader, true, draws, lc);
      if (!f) throw InternalError("an epoch with no batches");
    }
    const MicroTotals t = totals_of(*f, f->loss.item<double>(), world);
    finite = finite && t.nonfinite == 0;
    if (finite && f->loss.requires_grad() && (!world.distributed() || t.weight > 0)) {
      // In a group, this rank's share of the global mean: weight / total weight, × ranks (then averaged).
      const at::Tensor loss = !world.distributed()
                                  ? f->loss / accum
                                  : f->loss * (f->weight * static_cast<double>(world.size()) / t.weight / accum);
      synced = backward(loss, a + 1 == cfg.train.grad_accum && t.backward == static_cast<double>(world.size()));
    }
    s.loss += t.loss / accum;
    s.accuracy += t.accuracy;
    s.rm_dpo += t.rm_dpo;
    s.rm_rdpo += t.rm_rdpo;
    s.chosen_reward += t.chosen;
    s.rejected_reward += t.rejected;
    append_rows(s, f->rows, world);
    s.forward_passes += f->forwards;
    tokens += t.tokens, prompts += t.prompts, no_preference += t.no_preference;
  }
  for (double* v : {&s.accuracy, &s.rm_dpo, &s.rm_rdpo, &s.chosen_reward, &s.rejected_reward}) *v /= accum;
  s.epoch = loader->epoch();
  s.no_preference = static_cast<int64_t>(no_preference);
  // A step whose prompts all tie carries no preference: no AdamW step (momentum and weight decay would
  // still move the weights). Never apply a non-finite step: parameters and optimizer state stay as they were.
  // Every rank sees the same totals, so every rank decides the same.
  s.no_update = cfg.task != Task::sft && no_preference == prompts;
  if (world.distributed() && finite && !s.no_update && !synced) all_reduce_gradients();
  const UpdateOutcome u = s.no_update ? UpdateOutcome{0.0, false}
                                      : guarded_update(*opt, s.lr, cfg.train.max_grad_norm, finite);
  if (s.no_update)
    for (auto p : opt->params()) p.mutable_grad() = at::Tensor();
  s.grad_norm = u.grad_norm;
  s.skipped = !u.applied && !s.no_update;
  bad_steps = s.skipped ? bad_steps + 1 : 0;
  ++step;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.tokens_per_s = tokens / std::max(secs, 1e-9);
  s.seconds = secs;
  s.peak_gib = peak_gib(device);
  return s;
}

// Held-out loss and metrics: means over the eval prompts. In a data-parallel group each rank evaluates its
// contiguous share of every global batch (the loader's sharding) and the sums are gathered, so every rank
// holds the numbers one process computes (the draws are per prompt, not per batch).
EvalLog PreferenceTrainer::Impl::evaluate() {
  EvalLog e;
  e.step = step;
  if (eval_set.records.empty()) return e;
  data::PreferenceLoader ld(eval_set, *encoder, pad_id,
                            {cfg.train.batch_prompts, 0, false, data::PadSide::right, world.rank(), world.size()});
  const uint64_t draws = derive_seed(cfg.train.seed, SeedPurpose::eval_draws);  // the same draws at every evaluation
  prefs::LossConfig lc = cfg.loss;
  lc.gamma = prefs::gamma_at(cfg.gamma, std::min(step, total - 1), total);  // the last step's γ after training
  double n = 0;
  c10::AutoGradMode no_grad(false);
  while (auto f = micro_step(ld, false, draws, lc)) {
    if (f->rows.prompts == 0) continue;  // this rank's share of a short last batch
    const double w = static_cast<double>(f->rows.prompts);
    e.loss += f->loss.item<double>() * w;
    e.accuracy += f->accuracy * w;
    e.rm_dpo += f->rm_dpo * w;
    e.rm_rdpo += f->rm_rdpo * w;
    n += w;
  }
  const auto v = world.sum({e.loss, e.accuracy, e.rm_dpo, e.rm_rdpo, n});
  const double total_w = std::max(v[4], 1.0);
  e.loss = v[0] / total_w, e.accuracy = v[1] / total_w, e.rm_dpo = v[2] / total_w, e.rm_rdpo = v[3] / total_w;
  return e;
}

// Rank 0 writes the checkpoint (the atomic protocol of run_checkpoint); every rank waits for it to be complete.
void PreferenceTrainer::Impl::save(std::ostream& log) {
  // Never write non-finite weights (the guarded update never applies a non-finite step, so only weights that
  // were loaded that way can hold them): every rank refuses together.
  std::string bad;
  for (const auto& [name, p] : policy.named_parameters())
    if (p.requires_grad() && bad.empty() && !at::isfinite(p).all().item<bool>()) bad = name;
  if (world.any(!bad.empty()))
    throw NumericError("refusing to save checkpoint " + std::to_string(step) + ": " +
                       (bad.empty() ? std::string("another rank's parameters") : bad) +
                       " holds non-finite values (were they loaded that way? check " + cfg.model.path + ")");
  if (world.is_main()) {
    const nlohmann::json model_config =
        cfg.use_lora ? nlohmann::json() : saved_model_config(cfg.model.path, policy, !converted_from.empty());
    save_trainer_state(cfg, config_text, model_config, total, run_state(), log);
  }
  world.barrier();
}

std::vector<StepLog> PreferenceTrainer::run(bool resume, std::ostream& rank0_log) {
  Impl& m = *impl_;
  std::ostream& log = m.world.main_log(rank0_log);  // errors still reach every rank's command as exceptions
  if (m.world.distributed())
    log << "data-parallel: " << m.world.describe() << "; global batch " << m.cfg.train.batch_prompts * m.world.size()
        << " prompts (train.batch_prompts " << m.cfg.train.batch_prompts << " per process)\n";
  if (m.world.is_main()) io::make_dirs(m.cfg.train.out_dir);
  m.world.barrier();
  // Before any restore: the cache holds reference (not policy) values. Every rank scores a share (build_ref_cache).
  const RefCacheMode rc = m.cfg.task == Task::preference ? m.cfg.train.ref_cache : RefCacheMode::off;
  if (rc == RefCacheMode::on || (rc == RefCacheMode::automatic && m.ref_cache_pays(log))) m.build_ref_cache(log);
  if (resume) {
    if (auto dir = latest_checkpoint(m.cfg.train.out_dir)) {
      restore_trainer_state(*dir, m.cfg, m.total, m.run_state(), log);
      log << "resumed from " << *dir << " at step " << m.step << "/" << m.total << "\n";
    } else {
      log << "no complete checkpoint in " << m.cfg.train.out_dir << ": starting fresh\n";
    }
  }
  m.start_grad_sync(log);
  // Rank 0 records metrics.jsonl (dropping metrics of steps after the resumed one).
  std::optional<TrainLog> tl;
  if (m.world.is_main()) tl.emplace(m.cfg, resume, m.step, m.total, log);
  if (!m.text_warning.empty()) log << m.text_warning << "\n";
  log << "data " << m.cfg.data.path << ": format " << data::to_string(m.train_set.format)
      << (m.train_set.detected_because.empty() ? "" : " (auto: " + m.train_set.detected_because + ")") << "\n";
  if (tl) tl->start(m.train_set.records.size(), m.eval_set.records.size(), m.converted_from);
  if (tl) tl->skipped_records(m.skipped);
  std::vector<StepLog> out;
  int64_t ran = 0;
  const bool eval_on = !m.eval_set.records.empty();
  while (m.step < m.total) {
    out.push_back(m.train_step());
    ++ran;
    if (tl) tl->step(out.back());
    if (m.bad_steps >= m.cfg.train.max_bad_steps)
      throw NumericError(std::to_string(m.bad_steps) + " consecutive steps had a non-finite loss or gradient (last: lines " +
                         nlohmann::json(out.back().lines).dump() + "); no update was applied for them. Lower train.lr or check the data");
    if (eval_on && m.cfg.train.eval_every > 0 && m.step % m.cfg.train.eval_every == 0) {
      m.evals.push_back(m.evaluate());
      if (tl) tl->eval(m.evals.back());
    }
    // A stop (SIGINT on any rank, or train.stop_after) is decided by all ranks together.
    const bool stop = m.world.any(stop_requested().load() || (m.cfg.train.stop_after > 0 && ran >= m.cfg.train.stop_after));
    if (stop || m.step == m.total || (m.cfg.train.save_every > 0 && m.step % m.cfg.train.save_every == 0)) m.save(log);
    if (stop) {
      if (tl) tl->ties();
      log << "stopped at step " << m.step << " (resume with --resume)\n";
      return out;
    }
  }
  if (tl) tl->ties();
  if (!out.empty() && std::all_of(out.begin(), out.end(), [](const StepLog& s) { return s.skipped; }))
    throw NumericError("all " + std::to_string(out.size()) + " steps of this run had a non-finite loss or gradient; "
                       "no update was applied. Check the model's weights and the data, or lower train.lr");
  if (eval_on) {
    m.evals.push_back(m.evaluate());
    if (tl) tl->eval(m.evals.back());
  }
  return out;
}

}  // namespace hps::train

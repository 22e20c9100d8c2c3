// `hps model inspect`, `hps model export`, `hps logprobs`.
#include <unistd.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.hpp"
#include "dist/world.hpp"
#include "core/error.hpp"
#include "data/batching.hpp"
#include "data/pretokenized.hpp"
#include "io/jsonl.hpp"
#include "text/chat.hpp"
#include "text/text_setup.hpp"
#include "text/tokenizer.hpp"
#include "io/atomic_file.hpp"
#include "io/hf_download.hpp"
#include "io/hf_hub.hpp"
#include "io/checkpoint.hpp"
#include "model/load.hpp"
#include "model/logprobs.hpp"
#include "model/score_records.hpp"
#include "model/lora.hpp"

namespace hps::cli {

const CLI::Validator& model_ref() {
  static const CLI::Validator v(
      [](std::string& value) {
        value = io::resolve_model_dir(value);  // InputError (exit 1) for an org/name id the cache lacks
        return std::string();
      },
      "DIR|ORG/NAME[@REV]");
  return v;
}

at::Device parse_device(const std::string& name) {
  at::Device d = [&] {
    try {
      return at::Device(name);
    } catch (const c10::Error&) {
      throw UsageError("--device '" + name + "': expected cpu, cuda or cuda:N");
    }
  }();
  if (d.is_cuda() && !at::hasCUDA()) throw UsageError("--device " + name + ": no CUDA device is available here");
  return d;
}

std::string rank_prefix() {
  const auto& w = dist::world();
  return w.distributed() ? "rank " + std::to_string(w.rank()) + " of " + std::to_string(w.size()) + ": " : "";
}

model::Decoder load_model_for_cli(const std::string& dir, const std::string& adapter, const std::string& device,
                                  const std::string& dtype) {
  model::LoadOptions lo{parse_device(device), std::nullopt};
  if (lo.device.is_cuda() && !lo.device.has_index()) lo.device = dist::local_device("cuda");  // cuda:LOCAL_RANK under torchrun
  if (!dtype.empty()) lo.dtype = model::parse_dtype(dtype);
  return model::load_policy(dir, adapter, lo);
}

namespace {

std::string thousands(int64_t n) {
  // Built by appending (GCC 12 warns falsely on std::string::insert here).
  const std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

std::string describe_lora(const model::LoraConfig& c) {
  std::ostringstream o;
  o << "LoRA r=" << c.rank << " alpha=" << c.alpha << (c.rslora ? " (rsLoRA)" : "") << " scale " << c.scale()
    << ", dropout " << c.dropout << ", targets";
  for (const auto& t : c.targets) o << " " << t;
  return o.str();
}

// Prints what a model folder holds and every problem found; returns the number of problems.
int inspect(const std::string& dir, std::string adapter) {
  std::vector<std::string> problems;
  auto out = [](const std::string& k, const std::string& v) { std::cout << std::left << std::setw(13) << k << v << "\n"; };
  if (!io::file_exists(dir + "/config.json") && io::file_exists(dir + "/adapter_config.json")) {
    // An adapter folder on its own.
    model::LoraConfig c = model::read_lora_config(dir);
    out("adapter", dir);
    out("lora", describe_lora(c));
    out("base model", c.base_model.empty() ? "(not recorded)" : c.base_model);
    const auto ckpt = io::Checkpoint::open(dir, "adapter_model");
    out("tensors", std::to_string(ckpt.names().size()));
    return 0;
  }
  out("model", dir);
  const model::ModelConfig c = model::read_model_config(dir);
  out("architecture", c.architecture + " (" + model::to_string(c.family) + ", " +
                          (c.head == model::Head::causal_lm ? "causal LM head" : "reward head, " +
                                                                                     std::to_string(c.num_labels) + " label(s)") + ")");
  out("shape", "layers " + std::to_string(c.num_layers) + ", hidden " + std::to_string(c.hidden_size) + ", heads " +
                   std::to_string(c.num_heads) + " (kv " + std::to_string(c.num_kv_heads) + ", head_dim " +
                   std::to_string(c.head_dim) + "), intermediate " + std::to_string(c.intermediate_size) + ", vocab " +
                   std::to_string(c.vocab_size));
  std::ostringstream rope;
  rope << (c.rope.type == model::RopeType::llama3 ? "llama3" : "default") << ", theta " << c.rope.theta;
  if (c.rope.type == model::RopeType::llama3)
    rope << ", factor " << c.rope.factor << ", original context " << c.rope.original_max_position_embeddings;
  out("rope", rope.str());
  const int64_t window = *std::max_element(c.window.begin(), c.window.end());
  out("attention", window ? "sliding window " + std::to_string(window) + " on some or all layers" : "full causal");
  out("head", c.head == model::Head::sequence_classification
                  ? "score [" + std::to_string(c.num_labels) + ", " + std::to_string(c.hidden_size) + "] on the last real token"
                  : c.tie_word_embeddings ? "lm_head tied to the embeddings" : "separate lm_head");
  out("declared", "dtype " + c.torch_dtype);
  try {
    const auto ckpt = io::Checkpoint::open(dir, "model");
    std::map<std::string, int64_t> dtypes;
    int64_t bytes = 0;
    for (const auto& f : ckpt.files())
      for (const auto& t : f.tensors()) dtypes[t.dtype]++, bytes += static_cast<int64_t>(t.end - t.begin);
    std::string d;
    for (const auto& [k, n] : dtypes) d += (d.empty() ? "" : ", ") + k + " × " + std::to_string(n);
    out("dtypes", d);
    out("shards", std::to_string(ckpt.files().size()) + " file(s), " + thousands(bytes) + " bytes of tensors");
    model::Decoder m = model::load_model(dir);
    out("parameters", thousands(m.num_parameters()));
    for (const auto& [name, t] : m.named_parameters())
      if (!at::isfinite(t).all().item<bool>()) problems.push_back("tensor '" + name + "' has NaN or inf values");
    if (adapter.empty() && io::file_exists(dir + "/adapter/adapter_config.json")) adapter = dir + "/adapter";
    if (!adapter.empty()) {
      model::LoraConfig lc = model::load_lora(m, adapter);
      out("adapter", adapter + ": " + describe_lora(lc) + ", " + thousands(m.num_parameters(true) - m.num_parameters()) +
                         " parameters");
    } else {
      out("adapter", "none");
    }
  } catch (const InputError& e) {
    problems.push_back(e.what());
  }
  if (problems.empty()) out("problems", "none");
  for (const auto& p : problems) out("problem", p);
  return static_cast<int>(problems.size());
}

// Prints each tensor's max |a − b| and the largest; 1 when that exceeds atol > 0. Names, shapes and dtypes
// must match (InputError naming the first that does not).
int diff_tensors(const std::string& a, const std::string& b, double atol) {
  const auto fa = io::SafetensorsFile::open(a), fb = io::SafetensorsFile::open(b);
  if (fa.tensors().size() != fb.tensors().size())
    throw InputError(a + " holds " + std::to_string(fa.tensors().size()) + " tensors, " + b + " " +
                     std::to_string(fb.tensors().size()));
  double worst = 0;
  for (const auto& t : fa.tensors()) {
    const at::Tensor x = fa.get(t.name).to(at::kDouble);
    if (!fb.contains(t.name)) throw InputError(b + ": no tensor " + t.name + " (in " + a + ")");
    const at::Tensor y = fb.get(t.name).to(at::kDouble);
    if (!x.sizes().equals(y.sizes())) throw InputError(t.name + ": shapes differ between " + a + " and " + b);
    const double d = x.numel() == 0 ? 0.0 : (x - y).abs().max().item<double>();
    worst = std::max(worst, d);
    std::cout << t.name << "  max |a - b| = " << d << "\n";
  }
  std::cout << "largest difference " << worst << " over " << fa.tensors().size() << " tensors\n";
  return atol > 0 && !(worst <= atol) ? 1 : 0;
}

}  // namespace

Command add_download_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("download", "Fetch a model from the Hugging Face hub into the HF cache (shared with transformers)");
  auto repo = std::make_shared<std::string>(), revision = std::make_shared<std::string>("main");
  auto include = std::make_shared<std::vector<std::string>>();
  cmd->add_option("repo", *repo, "hub id: org/name (or org/name@revision)")->required();
  cmd->add_option("--revision", *revision, "branch, tag or commit")->default_str("main");
  cmd->add_option("--include", *include, "only files matching these globs, e.g. '*.json' '*.safetensors'");
  cmd->footer("Cache: HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub. HF_ENDPOINT, HF_TOKEN (or the token "
              "file of huggingface-cli login) and HF_HUB_OFFLINE=1 as for huggingface_hub. Prints the snapshot folder.");
  return {cmd, [=] {
            auto id = io::parse_hub_id(*repo);
            if (!id) throw UsageError("'" + *repo + "' is not a hub id (org/name[@revision])");
            if (repo->find('@') == std::string::npos) id->revision = *revision;
            io::DownloadOptions opt;
            opt.include = *include;
            opt.progress = ::isatty(STDERR_FILENO);
            std::cout << io::hub_download(*id, opt, std::cerr) << "\n";
            return 0;
          }};
}

Command add_model_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("model", "Inspect, export and randomly initialize Hugging Face models (Llama, Qwen2, Mistral)");
  cmd->require_subcommand(1);
  auto* ins = cmd->add_subcommand("inspect", "Architecture, parameters, dtypes, shards, adapter and problems found");
  auto dir = std::make_shared<std::string>(), adapter = std::make_shared<std::string>();
  ins->add_option("dir", *dir, "model folder (config.json + safetensors) or a PEFT adapter folder")->transform(model_ref())->required();
  ins->add_option("--adapter", *adapter, "PEFT adapter folder to check against the model")->transform(model_ref());

  auto* exp = cmd->add_subcommand("export", "Write a model (and adapter) in Hugging Face / PEFT format");
  auto e_model = std::make_shared<std::string>(), e_adapter = std::make_shared<std::string>(),
       e_out = std::make_shared<std::string>(), e_dtype = std::make_shared<std::string>();
  auto e_merge = std::make_shared<bool>(false);
  auto e_shard = std::make_shared<uint64_t>(5'000'000'000ULL);
  exp->add_option("--model", *e_model, "source model folder")->transform(model_ref())->required();
  exp->add_option("--adapter", *e_adapter, "PEFT adapter folder")->transform(model_ref());
  exp->add_flag("--merge", *e_merge, "fold the adapter into the weights (W += scale·B·A) and write a plain model");
  exp->add_option("--dtype", *e_dtype, "float32 | bfloat16 | float16 (default: the checkpoint's)");
  exp->add_option("--max-shard-bytes", *e_shard, "split weights into shards of at most this size");
  exp->add_option("--out", *e_out, "destination folder (adapter goes to OUT/adapter unless merged)")->required();

  auto* init = cmd->add_subcommand("init", "Create a randomly initialized model from a config.json (tests, benchmarks)");
  auto i_config = std::make_shared<std::string>(), i_out = std::make_shared<std::string>(),
       i_tok = std::make_shared<std::string>(), i_dtype = std::make_shared<std::string>("float32");
  auto i_seed = std::make_shared<uint64_t>(0);
  auto i_std = std::make_shared<double>(0.02);
  init->add_option("--config-json", *i_config, "a Hugging Face config.json")->required();
  init->add_option("--tokenizer", *i_tok, "folder whose tokenizer files are copied beside the weights")->transform(model_ref());
  init->add_option("--seed", *i_seed, "random seed");
  init->add_option("--std", *i_std, "standard deviation of the normal init (norm weights are 1, biases 0)");
  init->add_option("--dtype", *i_dtype, "float32 | bfloat16 | float16");
  init->add_option("--out", *i_out, "destination folder")->required();

  auto* diff = cmd->add_subcommand("diff", "Largest absolute difference per tensor of two safetensors files (same names and shapes)");
  auto d_a = std::make_shared<std::string>(), d_b = std::make_shared<std::string>();
  auto d_atol = std::make_shared<double>(0.0);
  diff->add_option("a", *d_a, "a .safetensors file")->required();
  diff->add_option("b", *d_b, "another one")->required();
  diff->add_option("--atol", *d_atol, "exit 1 when some element differs by more than this (default 0: print only)");

  return {cmd, [=]() -> int {
    if (ins->parsed()) return inspect(*dir, *adapter) == 0 ? 0 : 1;
    if (diff->parsed()) return diff_tensors(*d_a, *d_b, *d_atol);
    if (init->parsed()) {
      const auto j = io::read_json_file(*i_config);
      const auto c = model::parse_model_config(j, *i_config);
      model::save_model(model::random_model(c, at::kCPU, model::parse_dtype(*i_dtype), *i_std, *i_seed), j, *i_out);
      if (!i_tok->empty()) model::copy_companion_files(*i_tok, "", *i_out);
      std::cout << "wrote " << *i_out << ": " << c.architecture << ", " << thousands(model::make_skeleton(c).num_parameters())
                << " parameters\n";
      return 0;
    }
    model::LoadOptions lo;
    if (!e_dtype->empty()) lo.dtype = model::parse_dtype(*e_dtype);
    model::Decoder m = model::load_model(*e_model, lo);
    model::LoraConfig lc;
    if (!e_adapter->empty()) lc = model::load_lora(m, *e_adapter);
    if (*e_merge) {
      if (e_adapter->empty()) throw UsageError("--merge needs --adapter");
      model::merge_lora(m);
    }
    model::save_model(m, io::read_json_file(*e_model + "/config.json"), *e_out, *e_shard);
    model::copy_companion_files(*e_model, *e_model, *e_out);
    if (m.has_lora()) model::save_lora(m, lc, *e_out + "/adapter");
    // The card: where it came from, then the trained adapter's own card (method, data, settings) when it has one.
    io::write_file_atomic(*e_out + "/README.md", [&](std::ostream& o) {
      o << "# Exported by hps " << HPS_VERSION << "\n\nFrom `" << *e_model << "`"
        << (e_adapter->empty() ? "" : std::string(" with the adapter `") + *e_adapter + "`" + (*e_merge ? " merged" : " beside it (adapter/)"))
        << ".\n";
      if (!e_adapter->empty() && io::file_exists(*e_adapter + "/README.md")) o << "\n" << io::read_file(*e_adapter + "/README.md");
    });
    std::cout << "wrote " << *e_out << (m.has_lora() ? " (+ adapter/)" : "") << "\n";
    return 0;
  }};
}

Command add_logprobs_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("logprobs", "Summed response log-probs and token counts for every prompt/response");
  struct Opts {
    std::string model, adapter, data, out, device = "cpu", dtype, tokenizer, chat, on_bad = "error";
    int64_t batch = 8, max_prompt_length = 1 << 20, max_length = 2 << 20;
    bool padded = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "model folder")->transform(model_ref())->required();
  cmd->add_option("--adapter", o->adapter, "PEFT adapter folder")->transform(model_ref());
  cmd->add_option("--data", o->data,
                  "JSONL(.gz): pre-tokenized {\"prompt_ids\", \"response_ids\"} records, or any dataset format "
                  "`hps data inspect` reads (tokenized with --tokenizer)")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer folder for text data (default: the model folder)")->transform(model_ref());
  cmd->add_option("--chat-format", o->chat, "jinja | llama3 | chatml | mistral | hh (default: jinja, the tokenizer's own chat template)");
  cmd->add_option("--max-prompt-length", o->max_prompt_length, "text data: keep the last N prompt tokens");
  cmd->add_option("--max-length", o->max_length, "text data: cap prompt + response tokens");
  cmd->add_option("--on-bad-record", o->on_bad, "text data: error | skip (skipped lines are listed on stderr)");
  cmd->add_option("--out", o->out, "output JSONL: {\"line\", \"logp\": [K], \"tokens\": [K]} per record")->required();
  cmd->add_option("--device", o->device, "cpu | cuda | cuda:N");
  cmd->add_option("--dtype", o->dtype, "float32 | bfloat16 | float16 (default: the checkpoint's)");
  cmd->add_option("--batch-size", o->batch, "sequences per forward pass");
  cmd->add_flag("--padded", o->padded, "one padded row per response (default: packed, each prompt forwarded once)");
  return {cmd, [o]() -> int {
    if (o->batch <= 0) throw UsageError("--batch-size must be > 0");
    const model::Decoder m = load_model_for_cli(o->model, o->adapter, o->device, o->dtype);
    std::vector<data::TokenizedRecord> records;
    const auto first = io::first_jsonl_record(o->data);
    if (!first || (first->is_object() && first->contains("prompt_ids"))) {
      records = data::read_pretokenized(o->data, m.config.vocab_size);
    } else {
      const auto [tok, chat, warning] = text::load_text_setup(o->tokenizer.empty() ? o->model : o->tokenizer, o->chat);
      if (!warning.empty()) std::cerr << warning << "\n";
      if (tok.vocab_size() > m.config.vocab_size)
        throw InputError("tokenizer " + tok.source() + " has " + std::to_string(tok.vocab_size()) +
                         " tokens but the model's vocabulary has " + std::to_string(m.config.vocab_size) +
                         " (a tokenizer for another model?)");
      data::DatasetOptions dopt;
      dopt.min_responses = 1;
      dopt.on_bad_record = data::parse_on_bad_record(o->on_bad);
      const data::Dataset d = data::read_dataset(o->data, dopt);
      for (const auto& s : d.skipped) std::cerr << "skipped " << o->data << ":" << s.line << ": " << s.reason << "\n";
      records = data::tokenize_dataset(d, data::Encoder(tok, chat, {o->max_prompt_length, o->max_length, true}));
    }
    const auto scored =
        model::score_records(m, records, o->batch, o->padded ? model::Layout::padded : model::Layout::packed);
    // A non-finite log-prob (NaN weights, rope_theta = 0, …) would be written as null: refuse the file.
    for (size_t r = 0; r < records.size(); ++r)
      for (size_t k = 0; k < scored[r].logp.size(); ++k)
        if (!std::isfinite(scored[r].logp[k]))
          throw NumericError(o->data + ":" + std::to_string(records[r].line) + ": response " + std::to_string(k) +
                             " has log-prob " + std::to_string(scored[r].logp[k]) + " under " + o->model +
                             " (non-finite: check the model's weights and config); nothing written");
    io::write_file_atomic(o->out, [&](std::ostream& out) {
      for (size_t r = 0; r < records.size(); ++r)
        out << nlohmann::json{{"line", records[r].line}, {"logp", scored[r].logp}, {"tokens", scored[r].tokens}}.dump()
            << "\n";
    });
    size_t n = 0;
    for (const auto& r : records) n += r.responses.size();
    std::cerr << "scored " << n << " responses of " << records.size() << " records → " << o->out << "\n";
    return 0;
  }};
}

}  // namespace hps::cli

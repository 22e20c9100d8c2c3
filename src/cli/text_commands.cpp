// `hps tokenize`, `hps data inspect`, `hps generate`, `hps score`, `hps eval`.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/json_text.hpp"
#include "data/batching.hpp"
#include "data/dataset.hpp"
#include "data/inspect.hpp"
#include "generate/generate_file.hpp"
#include "dist/world.hpp"
#include "eval/evaluate.hpp"
#include "eval/report.hpp"
#include "pipeline/eval_stage.hpp"
#include "generate/score_file.hpp"
#include "model/load.hpp"
#include "model/lora.hpp"
#include "text/chat.hpp"
#include "text/text_setup.hpp"
#include "text/tokenizer.hpp"

namespace hps::cli {

Command add_tokenize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Encode text to token ids (JSON array), or decode ids back to text");
  struct Opts {
    std::string tokenizer, text, file, chat;
    bool decode = false, count = false, no_special = false, skip_special = false, messages = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--tokenizer", o->tokenizer, "folder with tokenizer.json (+ tokenizer_config.json)")->transform(model_ref())->required();
  auto* text = cmd->add_option("--text", o->text, "the text (or, with --decode, a JSON array of ids)");
  auto* file = cmd->add_option("--file", o->file, "read the text (or JSON ids) from this file");
  text->excludes(file);
  cmd->add_flag("--decode", o->decode, "decode a JSON array of ids to text");
  cmd->add_flag("--count", o->count, "print only the number of tokens");
  cmd->add_flag("--no-special", o->no_special, "do not add the post-processor's special tokens (BOS …)");
  cmd->add_flag("--skip-special", o->skip_special, "with --decode: leave special tokens out of the text");
  cmd->add_flag("--messages", o->messages,
                "the input is a JSON list of {role, content}: print the prompt ids training and generation use "
                "(rendered with the chat format, up to the assistant's turn)");
  cmd->add_option("--chat-format", o->chat, "with --messages: jinja | llama3 | chatml | mistral | hh (default: jinja, the tokenizer's own chat template)");
  return {cmd, [o, text, file]() -> int {
    if (text->count() == 0 && file->count() == 0) throw UsageError("give --text or --file");
    const std::string input = file->count() ? io::read_file(o->file) : o->text;
    if (o->messages) {  // exactly data::prompt_ids, as every stage encodes a prompt
      const auto [tok, chat, warning] = text::load_text_setup(o->tokenizer, o->chat);
      if (!warning.empty()) std::cerr << warning << "\n";
      const nlohmann::json list = io::parse_json(input, file->count() ? o->file : "--text");
      data::PreferenceRecord r;
      if (!list.is_array()) throw UsageError("--messages expects a JSON list of {\"role\", \"content\"}");
      for (const auto& m : list) {
        if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
            !m["content"].is_string())
          throw UsageError("--messages: every message needs a string role and content");
        r.prompt_messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
      }
      std::cout << nlohmann::json(data::prompt_ids(r, tok, chat, 0)).dump() << "\n";
      return 0;
    }
    const auto tok = text::Tokenizer::from_dir(o->tokenizer);
    if (o->decode) {
      const nlohmann::json ids = io::parse_json(input, file->count() ? o->file : "--text");
      if (!ids.is_array()) throw UsageError("--decode expects a JSON array of token ids");
      std::vector<int64_t> v;
      for (const auto& x : ids) {
        if (!x.is_number_integer()) throw UsageError(std::string("--decode: a ") + x.type_name() + " is not an integer id");
        v.push_back(x.get<int64_t>());
      }
      std::cout << tok.decode(v, o->skip_special) << "\n";
      return 0;
    }
    const auto ids = tok.encode(input, !o->no_special);
    if (o->count) std::cout << ids.size() << "\n";
    else std::cout << nlohmann::json(ids).dump() << "\n";
    return 0;
  }};
}

Command add_data_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("data", "Inspect preference datasets");
  cmd->require_subcommand(1);
  auto* ins = cmd->add_subcommand("inspect", "Records, format, K, rewards, token lengths and problems of a dataset");
  struct Opts {
    std::string file, tokenizer, format = "auto", pku = "helpful", chat;
    bool allow_empty = false;
  };
  auto o = std::make_shared<Opts>();
  ins->add_option("file", o->file, "dataset .jsonl or .jsonl.gz")->required();
  ins->add_option("--tokenizer", o->tokenizer, "tokenizer folder: adds token-length percentiles")->transform(model_ref());
  ins->add_option("--format", o->format, "auto | hh_rlhf | pku | ranked | messages | text_pair | prompt_completion");
  ins->add_option("--pku-ranking", o->pku, "helpful | safe (PKU-SafeRLHF)");
  ins->add_option("--chat-format", o->chat, "jinja | llama3 | chatml | mistral | hh (default: jinja, the tokenizer's own chat template)");
  ins->add_flag("--allow-empty-responses", o->allow_empty, "keep records with an empty response");
  return {cmd, [o]() -> int {
    data::DatasetOptions opt;
    opt.format = data::parse_format(o->format);
    opt.pku_ranking = data::parse_pku_ranking(o->pku);
    opt.on_bad_record = data::OnBadRecord::skip;  // inspect reports every bad record instead of stopping
    opt.min_responses = 1;
    opt.allow_empty_responses = o->allow_empty;
    const data::Dataset d = data::read_dataset(o->file, opt);
    std::optional<text::Tokenizer> tok;
    text::ChatTemplate chat;
    if (!o->tokenizer.empty()) {
      tok = text::Tokenizer::from_dir(o->tokenizer);
      chat = text::choose_chat_template(tok->config(), o->chat, o->tokenizer);
    } else if (!o->chat.empty()) {
      chat.format = text::parse_chat_format(o->chat);
    }
    auto report = data::inspect_dataset(d, tok ? &*tok : nullptr, chat);
    int64_t single = 0;
    for (const auto& r : d.records) single += r.responses.size() < 2;
    data::print_report(report, std::cout);
    if (single) std::cout << "note            " << single << " record(s) with one response: SFT only\n";
    return report.skipped.empty() ? 0 : 1;
  }};
}

// A count of prompts per batch or chunk: an integer ≥ 1 (0 divided by zero in the resume check).
const CLI::Validator kCountAtLeastOne(
    [](std::string& v) {
      try {
        size_t used = 0;
        if (std::stoll(v, &used) >= 1 && used == v.size()) return std::string();
      } catch (const std::exception&) {
      }
      return "must be an integer >= 1, found '" + v + "'";
    },
    "INT>=1");

Command add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Sample n responses per prompt of a dataset into ranked-list JSONL (resumable)");
  struct Opts {
    std::string model, adapter, tokenizer, data, out, device = "cpu", dtype, chat, format = "auto";
    generate::GenerateJob job;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "model folder")->transform(model_ref())->required();
  cmd->add_option("--adapter", o->adapter, "PEFT adapter folder")->transform(model_ref());
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer folder (default: the model folder)")->transform(model_ref());
  cmd->add_option("--data", o->job.data, "prompts: any dataset format, or {\"prompt\": ...} lines")->required();
  cmd->add_option("--out", o->job.out, "output JSONL (appended; prompts already there are skipped)")->required();
  cmd->add_option("--n", o->job.sampling.n, "samples per prompt");
  cmd->add_option("--temperature", o->job.sampling.temperature, "0 = greedy");
  cmd->add_option("--top-p", o->job.sampling.top_p, "nucleus sampling mass");
  cmd->add_option("--top-k", o->job.sampling.top_k, "0 = off");
  cmd->add_option("--max-new-tokens", o->job.sampling.max_new_tokens, "tokens per response at most");
  cmd->add_option("--stop", o->job.sampling.stop, "stop string (repeatable): the response is cut before it");
  cmd->add_option_function<std::vector<std::string>>(
      "--logit-bias",
      [o](const std::vector<std::string>& v) {
        for (const auto& s : v) o->job.sampling.logit_bias.push_back(generate::parse_logit_bias(s));
      },
      "TOKEN_ID=BIAS (repeatable): added to that token's logit before temperature (-100 bans it)");
  cmd->add_option("--seed", o->job.sampling.seed, "same seed, same samples");
  cmd->add_option("--batch-prompts", o->job.batch_prompts, "prompts per batch (each with its n samples)")
      ->check(kCountAtLeastOne);
  cmd->add_option("--max-prompt-length", o->job.max_prompt_length, "keep the last N prompt tokens");
  cmd->add_flag("--continuous-batching,!--no-continuous-batching", o->job.continuous_batching,
                "refill the rows of ended samples from the next prompts (default; same output either way; speed: "
                "docs/generate.md)");
  cmd->add_flag("!--copy-prompt-cache", o->job.shared_prompt_cache,
                "give each of a prompt's n samples its own copy of the prompt's KV cache (default: one shared copy)");
  cmd->add_option("--stop-after-prompts", o->job.stop_after_prompts, "stop after this many prompts (resume later)");
  cmd->add_option("--device", o->device, "cpu | cuda | cuda:N");
  cmd->add_option("--dtype", o->dtype, "float32 | bfloat16 | float16 (default: the checkpoint's)");
  cmd->add_option("--chat-format", o->chat, "jinja | llama3 | chatml | mistral | hh (default: jinja, the tokenizer's own chat template)");
  cmd->add_option("--format", o->format, "auto | hh_rlhf | pku | ranked | messages | text_pair | prompt_completion");
  return {cmd, [o]() -> int {
    const model::Decoder m = load_model_for_cli(o->model, o->adapter, o->device, o->dtype);
    const auto [tok, chat, warning] = text::load_text_setup(o->tokenizer.empty() ? o->model : o->tokenizer, o->chat);
    if (!warning.empty() && dist::world().is_main()) std::cerr << warning << "\n";
    o->job.data_options.format = data::parse_format(o->format);
    const dist::World& world = dist::world();
    const int64_t n = generate::generate_file(m, tok, chat, o->job, world.main_log(std::cerr), world);
    std::cerr << rank_prefix() << "wrote " << n << " prompts × " << o->job.sampling.n << " samples to " << o->job.out << "\n";
    return 0;
  }, /*data_parallel=*/true};
}

Command add_score_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("score", "Annotate every response of a ranked-list JSONL with a reward model's score");
  struct Opts {
    std::string model, tokenizer, device = "cpu", dtype, chat;
    generate::ScoreJob job;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "reward model folder (*ForSequenceClassification)")->transform(model_ref())->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer folder (default: the model folder)")->transform(model_ref());
  cmd->add_option("--data", o->job.data, "ranked-list JSONL: {\"prompt\", \"responses\"} (e.g. hps generate's output)")->required();
  cmd->add_option("--out", o->job.out, "output JSONL with \"rewards\" added (may equal --data: replaced atomically)")->required();
  cmd->add_option("--batch-size", o->job.batch_size, "sequences per forward (whole prompts; --padded: sorted by length)");
  cmd->add_flag_callback("--padded", [o] { o->job.layout = model::Layout::padded; },
                         "one padded row per response (default: packed, each prompt forwarded once)");
  cmd->add_option("--max-length", o->job.max_length, "prompt + response tokens");
  cmd->add_option("--chunk-prompts", o->job.chunk_prompts, "prompts scored between progress saves (resume granularity)")
      ->check(kCountAtLeastOne);
  cmd->add_option("--device", o->device, "cpu | cuda | cuda:N");
  cmd->add_option("--dtype", o->dtype, "float32 | bfloat16 | float16 (default: the checkpoint's)");
  cmd->add_option("--chat-format", o->chat, "jinja | llama3 | chatml | mistral | hh (default: jinja, the tokenizer's own chat template)");
  return {cmd, [o]() -> int {
    const model::Decoder rm = load_model_for_cli(o->model, "", o->device, o->dtype);
    const auto [tok, chat, warning] = text::load_text_setup(o->tokenizer.empty() ? o->model : o->tokenizer, o->chat);
    if (!warning.empty() && dist::world().is_main()) std::cerr << warning << "\n";
    const dist::World& world = dist::world();
    const int64_t n = generate::score_file(rm, tok, chat, o->job, world.main_log(std::cerr), world);
    std::cerr << rank_prefix() << "scored " << n << " prompts → " << o->job.out << "\n";
    return 0;
  }, /*data_parallel=*/true};
}

Command add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Reward, BLEU, win rate, margins and KL of scored generations; report + plot");
  auto j = std::make_shared<eval::EvalJob>();
  auto m = std::make_shared<pipeline::EvalModels>();
  cmd->add_option("--generations", j->generations, "scored generations of the policy (hps generate + hps score)")->required();
  cmd->add_option("--baseline", j->baseline, "scored generations of another model: win / tie / lose");
  cmd->add_option("--test", j->test, "test dataset with reference responses: BLEU (and margins with the models)");
  cmd->add_option("--policy", m->policy, "policy model folder: margins and KL (with --reference and --test)")->transform(model_ref());
  cmd->add_option("--adapter", m->adapter, "policy LoRA adapter")->transform(model_ref());
  cmd->add_option("--reference", m->reference, "reference model folder")->transform(model_ref());
  cmd->add_option("--tokenizer", m->tokenizer, "tokenizer folder (default: the policy folder)")->transform(model_ref());
  cmd->add_option("--chat-format", m->chat_format, "jinja | llama3 | chatml | mistral | hh (default: jinja, the tokenizer's own chat template)");
  cmd->add_option("--device", m->device, "cpu | cuda");
  cmd->add_option("--name", j->name, "method name in the report");
  cmd->add_option("--baseline-name", j->baseline_name, "baseline name in the report");
  cmd->add_option("--tie-band", j->tie_band, "reward differences within this band are ties");
  cmd->add_option("--out", j->out, "folder for results.json, report.md, rewards.svg")->required();
  return {cmd, [j, m]() -> int {
    if (!m->policy.empty() && (m->reference.empty() || j->test.empty()))
      throw UsageError("--policy needs --reference and --test (margins on test pairs, KL on winning responses)");
    pipeline::run_eval(*j, *m, dist::world().main_log(std::cout));  // under torchrun: sharded scoring
    return 0;
  }, /*data_parallel=*/true};
}

Command add_report_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", "One Table-2-style report (markdown + plots) from several hps eval folders");
  auto runs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("--run", *runs, "NAME=EVAL_DIR (repeatable, in table order)")->required();
  cmd->add_option("--out", *out, "folder for report.md, rewards.svg, margins.svg")->required();
  return {cmd, [runs, out]() -> int {
    std::vector<std::pair<std::string, std::string>> pairs;
    for (const auto& r : *runs) {
      const size_t eq = r.find('=');
      if (eq == std::string::npos || eq == 0) throw UsageError("--run expects NAME=EVAL_DIR, got '" + r + "'");
      pairs.emplace_back(r.substr(0, eq), r.substr(eq + 1));
    }
    eval::combine_reports(pairs, *out, std::cout);
    return 0;
  }};
}

}  // namespace hps::cli

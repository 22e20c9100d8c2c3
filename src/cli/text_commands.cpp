// `hps tokenize`.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "text/tokenizer.hpp"

namespace hps::cli {

Command add_tokenize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Encode text to token ids (JSON array), or decode ids back to text");
  struct Opts {
    std::string tokenizer, text, file;
    bool decode = false, count = false, no_special = false, skip_special = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--tokenizer", o->tokenizer, "folder with tokenizer.json (+ tokenizer_config.json)")->required();
  auto* text = cmd->add_option("--text", o->text, "the text (or, with --decode, a JSON array of ids)");
  auto* file = cmd->add_option("--file", o->file, "read the text (or JSON ids) from this file");
  text->excludes(file);
  cmd->add_flag("--decode", o->decode, "decode a JSON array of ids to text");
  cmd->add_flag("--count", o->count, "print only the number of tokens");
  cmd->add_flag("--no-special", o->no_special, "do not add the post-processor's special tokens (BOS …)");
  cmd->add_flag("--skip-special", o->skip_special, "with --decode: leave special tokens out of the text");
  return {cmd, [o, text, file]() -> int {
    if (text->count() == 0 && file->count() == 0) throw UsageError("give --text or --file");
    const std::string input = file->count() ? io::read_file(o->file) : o->text;
    const auto tok = text::Tokenizer::from_dir(o->tokenizer);
    if (o->decode) {
      nlohmann::json ids;
      try {
        ids = nlohmann::json::parse(input);
      } catch (const nlohmann::json::parse_error& e) {
        throw UsageError(std::string("--decode expects a JSON array of token ids: ") + e.what());
      }
      if (!ids.is_array()) throw UsageError("--decode expects a JSON array of token ids");
      std::vector<int64_t> v;
      for (const auto& x : ids) {
        if (!x.is_number_integer()) throw UsageError("--decode: " + x.dump() + " is not an integer id");
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

}  // namespace hps::cli

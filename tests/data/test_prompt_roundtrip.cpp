// One prompt, one set of ids (issue 12 §5). For every dataset format × chat format: the prompt ids that
// generation samples from, that the reward model scores, that training encodes (the Encoder through the
// loader) and that evaluation encodes are the same for a record; and the ranked record `hps generate` writes
// (then `hps score` rewrites) reads back to those very ids. Before the fix, an HH transcript was written as
// a plain text prompt and read back as a user message: re-wrapped ("\n\nHuman: \n\nHuman: …") in every
// later stage.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "data/batching.hpp"
#include "data/dataset.hpp"
#include "data/inspect.hpp"
#include "eval/evaluate.hpp"
#include "generate/generate_file.hpp"
#include "generate/score_file.hpp"
#include "io/atomic_file.hpp"
#include "model/load.hpp"
#include "test_util.hpp"
#include "text/chat.hpp"
#include "text/tokenizer.hpp"
#include "train/train_config.hpp"

namespace hps::data {
namespace {

using nlohmann::json;
using test::message_of;

json msg(const std::string& role, const std::string& content) { return {{"role", role}, {"content", content}}; }

// Two or three records of each format, written as its dataset file.
std::string write_dataset(const test::TempDir& dir, const std::string& format) {
  std::vector<json> recs;
  if (format == "hh_rlhf") {
    const std::string p = "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant:";
    recs.push_back({{"chosen", p + " 6."}, {"rejected", p + " 7."}});
    recs.push_back({{"chosen", "\n\nHuman: Say hi.\n\nAssistant: Hi!"}, {"rejected", "\n\nHuman: Say hi.\n\nAssistant: No."}});
  } else if (format == "pku") {
    recs.push_back({{"prompt", "How do I bake bread?"}, {"response_0", "Knead it."}, {"response_1", "Buy it."},
                    {"better_response_id", 1}, {"safer_response_id", 0}});
    recs.push_back({{"prompt", "Name a tree."}, {"response_0", "Oak."}, {"response_1", "Rock."},
                    {"better_response_id", 0}, {"safer_response_id", 0}});
  } else if (format == "ranked") {
    recs.push_back({{"prompt", json::array({msg("user", "Name a color."), msg("assistant", "Red."), msg("user", "Another?")})},
                    {"responses", {"Blue.", "Red.", "Car."}}, {"rewards", {1.0, 0.5, 0.0}}});
    recs.push_back({{"prompt", "Count to three."}, {"responses", {"1 2 3", "1 2"}}});  // a text prompt: one user turn
    recs.push_back({{"prompt", "\n\nHuman: Hello?\n\nAssistant:"}, {"prompt_format", "raw"}, {"responses", {" Hi.", " Go."}}});
  } else if (format == "messages") {
    recs.push_back({{"chosen", {msg("user", "Pick a number."), msg("assistant", "7")}},
                    {"rejected", {msg("user", "Pick a number."), msg("assistant", "no")}}});
    recs.push_back({{"prompt", json::array({msg("user", "Hi"), msg("assistant", "Hello."), msg("user", "Bye")})},
                    {"chosen", {msg("assistant", "Bye!")}}, {"rejected", {msg("assistant", "Stay.")}}});
  }
  const std::string path = dir.str(format + ".jsonl");
  std::ofstream o(path);
  for (const auto& r : recs) o << r.dump() << "\n";
  return path;
}

struct ChatCase {
  std::string name, tokenizer;
  text::ChatTemplate chat;
};

text::ChatTemplate own_template(const std::string& tokenizer) {
  const auto tok = text::Tokenizer::from_dir(test::fixtures_dir() + "/tokenizers/" + tokenizer);
  return text::choose_chat_template(tok.config(), "");
}

std::vector<ChatCase> chat_cases() {
  return {{"llama3", "llama3", {text::ChatFormat::llama3, ""}},
          {"chatml", "qwen2", {text::ChatFormat::chatml, ""}},
          {"chatml+system", "qwen2", {text::ChatFormat::chatml, "You are a helpful assistant."}},
          {"mistral", "gpt2", {text::ChatFormat::mistral, ""}},
          {"hh", "gpt2", {text::ChatFormat::hh, ""}},
          // the models' own templates through the Jinja interpreter (BOS written by the template)
          {"jinja-qwen2", "qwen2", own_template("qwen2")},
          {"jinja-llama3", "llama3", own_template("llama3")}};
}

const std::vector<std::string> kFormats{"hh_rlhf", "pku", "ranked", "messages"};

DatasetOptions read_opts(Format f = Format::auto_detect) {
  DatasetOptions o;
  o.format = f;
  o.min_responses = 1;
  o.allow_empty_responses = true;  // a random model may stop at once
  return o;
}

// The prompt ids of every record as the training loop sees them: the trainer's Encoder (its default data
// settings) through the loader, the prompt tokens of each batch row.
std::map<int64_t, std::vector<int64_t>> train_prompt_ids(const Dataset& d, const text::Tokenizer& tok, const text::ChatTemplate& chat) {
  const train::DataSettings s;
  const Encoder enc(tok, chat, {s.max_prompt_length, s.max_length, true});
  PreferenceLoader loader(d, enc, tok.pad_id().value_or(0), {1, 0, false, PadSide::right});
  std::map<int64_t, std::vector<int64_t>> out;
  while (auto b = loader.next(select_all)) {
    std::vector<int64_t> p;
    for (int64_t t = 0; t < b->ids.size(1); ++t)
      if (b->mask[0][t].item<int64_t>() == 1 && b->response_mask[0][t].item<int64_t>() == 0)
        p.push_back(b->ids[0][t].item<int64_t>());
    out[b->lines[0]] = p;
  }
  return out;
}

// Every stage's prompt ids of every record of `d`, which must agree; returns them in record order.
std::vector<std::vector<int64_t>> agreed_prompt_ids(const Dataset& d, const text::Tokenizer& tok, const text::ChatTemplate& chat,
                                                    const std::string& what) {
  const auto train = train_prompt_ids(d, tok, chat);
  const Encoder score = generate::score_encoder(tok, chat, generate::ScoreJob{});
  const Encoder eval = eval::eval_encoder(tok, chat);
  std::vector<std::vector<int64_t>> out;
  for (const auto& r : d.records) {
    const std::string at = what + " line " + std::to_string(r.line);
    const auto gen = generate::generation_prompt_ids(r, tok, chat, generate::GenerateJob{});
    EXPECT_EQ(gen, prompt_ids(r, tok, chat)) << at;
    EXPECT_EQ(score.encode(r, select_all(r)).prompt, gen) << at << ": score vs generate";
    EXPECT_EQ(eval.encode(r, {}).prompt, gen) << at << ": eval vs generate";
    EXPECT_EQ(train.at(r.line), gen) << at << ": train vs generate";
    EXPECT_EQ(tokenize_dataset(Dataset{"", d.format, "", {r}, {}, 1}, score)[0].prompt, gen) << at << ": logprobs vs generate";
    out.push_back(gen);
  }
  return out;
}

TEST(PromptRoundTrip, EveryStageTokenizesTheSamePromptAndGeneratedRecordsReadBackToIt) {
  test::TempDir dir;
  const auto cfg_json = io::read_json_file(test::fixtures_dir() + "/train/tiny_qwen2_config.json");
  auto cfg = model::parse_model_config(cfg_json, "tiny");  // vocabulary 1536: room for every fixture tokenizer
  const auto policy = model::random_model(cfg, at::kCPU, at::kFloat, 0.1, 11);
  cfg.architecture = "Qwen2ForSequenceClassification", cfg.head = model::Head::sequence_classification, cfg.num_labels = 1;
  const auto rm = model::random_model(cfg, at::kCPU, at::kFloat, 0.1, 12);
  for (const auto& format : kFormats) {
    const std::string data = write_dataset(dir, format);
    for (const auto& c : chat_cases()) {
      const std::string what = format + " × " + c.name;
      SCOPED_TRACE(what);
      const auto tok = text::Tokenizer::from_dir(test::fixtures_dir() + "/tokenizers/" + c.tokenizer);
      // The source records, read as training reads them (every format has ≥ 2 responses here).
      const Dataset src = read_dataset(data, read_opts());
      ASSERT_EQ(to_string(src.format), format);
      const auto want = agreed_prompt_ids(src, tok, c.chat, what + " (source)");

      // `hps generate` writes the ranked list; `hps score` rewrites it in place (the pipeline's annotate).
      generate::GenerateJob job;
      job.data = data, job.out = dir.str("gen_" + format + "_" + c.name + ".jsonl");
      job.sampling.n = 2, job.sampling.max_new_tokens = 3, job.sampling.temperature = 1.0, job.sampling.seed = 3;
      std::ostringstream log;
      ASSERT_EQ(generate::generate_file(policy, tok, c.chat, job, log), static_cast<int64_t>(src.records.size()));
      for (int pass = 0; pass < 2; ++pass) {
        const std::string stage = pass == 0 ? "generated" : "scored";
        const Dataset back = read_dataset(job.out, read_opts(Format::ranked));
        ASSERT_EQ(back.records.size(), src.records.size());
        const auto got = agreed_prompt_ids(back, tok, c.chat, what + " (" + stage + ")");
        for (size_t i = 0; i < src.records.size(); ++i) {
          EXPECT_EQ(got[i], want[i]) << what << ": the " << stage << " record of source line " << src.records[i].line
                                     << " reads back to other prompt ids";
          const std::string text = prompt_text(back.records[i], c.chat);
          EXPECT_EQ(text, prompt_text(src.records[i], c.chat));
          EXPECT_EQ(text.find("\n\nHuman: \n\nHuman:"), std::string::npos) << "a re-wrapped HH transcript: " << text;
          EXPECT_EQ(text.find("\n\nAssistant:\n\nAssistant:"), std::string::npos) << "a re-wrapped HH transcript: " << text;
        }
        if (pass == 0) generate::score_file(rm, tok, c.chat, {job.out, job.out, 8, 256, 4}, log);
      }
    }
  }
}

// The HH case in the pipeline's own words: a raw transcript renders as itself in the hh format (no second
// "\n\nHuman: " / "\n\nAssistant:") and stays verbatim in a chat format (no ChatML turn around it).
TEST(PromptRoundTrip, HhTranscriptIsWrittenRawAndReadBackVerbatim) {
  const std::string p = "\n\nHuman: Why?\n\nAssistant: Because.\n\nHuman: Sure?\n\nAssistant:";
  PreferenceRecord r;
  r.prompt_text = p;
  json line = json::object();
  write_prompt(r, line);
  EXPECT_EQ(line, (json{{"prompt", p}, {"prompt_format", "raw"}}));
  test::TempDir dir;
  io::write_file_atomic(dir.str("r.jsonl"), [&](std::ostream& o) {
    json l = line;
    l["responses"] = {" Yes.", " No."};
    o << l.dump() << "\n";
  });
  const auto back = read_dataset(dir.str("r.jsonl"));
  ASSERT_EQ(back.records.size(), 1u);
  EXPECT_TRUE(back.records[0].prompt_messages.empty());
  EXPECT_EQ(back.records[0].prompt_text, p);
  for (auto f : {text::ChatFormat::hh, text::ChatFormat::chatml, text::ChatFormat::llama3, text::ChatFormat::mistral})
    EXPECT_EQ(prompt_text(back.records[0], {f, ""}), p) << text::to_string(f);
}

TEST(PromptRoundTrip, MessagePromptsAreWrittenAsMessageListsAndTextPromptsStayUserTurns) {
  PreferenceRecord r;
  r.prompt_messages = {{"system", "Be brief."}, {"user", "Hi"}};
  json line = {{"prompt_format", "raw"}};  // a stale flag is dropped
  write_prompt(r, line);
  EXPECT_EQ(line, (json{{"prompt", json::array({msg("system", "Be brief."), msg("user", "Hi")})}}));
  test::TempDir dir;
  {
    std::ofstream o(dir.str("r.jsonl"));
    o << json{{"prompt", "Count."}, {"responses", {"1", "2"}}}.dump() << "\n";                                // old files
    o << json{{"prompt", "Count."}, {"prompt_format", "user"}, {"responses", {"1", "2"}}}.dump() << "\n";  // explicit
  }
  const auto d = read_dataset(dir.str("r.jsonl"));
  for (const auto& rec : d.records) {
    ASSERT_EQ(rec.prompt_messages.size(), 1u);
    EXPECT_EQ(rec.prompt_messages[0].role, "user");
    EXPECT_EQ(rec.prompt_messages[0].content, "Count.");
  }
}

TEST(PromptRoundTrip, BadPromptFormatIsABadRecord) {
  test::TempDir dir;
  auto read_one = [&](const json& rec) {
    io::write_file_atomic(dir.str("b.jsonl"), [&](std::ostream& o) { o << rec.dump() << "\n"; });
    return message_of<InputError>([&] { read_dataset(dir.str("b.jsonl"), {Format::ranked}); });
  };
  EXPECT_THAT(read_one({{"prompt", "x"}, {"prompt_format", "chatml"}, {"responses", {"a", "b"}}}),
              ::testing::HasSubstr("field 'prompt_format': expected \"raw\""));
  EXPECT_THAT(read_one({{"prompt", json::array({msg("user", "x")})}, {"prompt_format", "raw"}, {"responses", {"a", "b"}}}),
              ::testing::HasSubstr("field 'prompt_format': only a text prompt"));
  EXPECT_THAT(read_one({{"prompt", ""}, {"prompt_format", "raw"}, {"responses", {"a", "b"}}}),
              ::testing::HasSubstr("empty raw prompt"));
}

}  // namespace
}  // namespace hps::data

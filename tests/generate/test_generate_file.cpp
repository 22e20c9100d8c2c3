// generate_file: a generation run killed mid-file resumes and writes what an uninterrupted run writes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "generate/generate_file.hpp"
#include "io/atomic_file.hpp"
#include "model/load.hpp"
#include "model/model_helpers.hpp"

namespace hps::generate {
namespace {

// A tiny random Qwen2 (the fixture tokenizer's vocabulary) and `count` prompts "Question i" + suffix(i).
model::Decoder tiny_model() {
  const auto j = io::read_json_file(test::fixtures_dir() + "/train/tiny_qwen2_config.json");
  return model::random_model(model::parse_model_config(j, "tiny"), at::kCPU, at::kFloat, 0.1, 4);
}
void write_prompts(const std::string& path, int count, const std::function<std::string(int)>& suffix) {
  std::ofstream p(path);
  for (int i = 0; i < count; ++i) p << nlohmann::json{{"prompt", "Question " + std::to_string(i) + suffix(i)}}.dump() << "\n";
}

TEST(GenerateFile, ResumeAfterACrashWritesWhatAnUninterruptedRunWrites) {
  test::TempDir dir;
  const auto m = tiny_model();
  const auto tok = text::Tokenizer::from_dir(test::fixtures_dir() + "/tokenizers/qwen2");
  write_prompts(dir.str("prompts.jsonl"), 5, [](int) { return std::string("?"); });
  GenerateJob job;
  job.data = dir.str("prompts.jsonl");
  job.sampling.n = 3, job.sampling.max_new_tokens = 10, job.sampling.temperature = 0.9, job.sampling.seed = 7;
  job.batch_prompts = 2;
  const text::ChatTemplate chat = text::detect_chat_template(tok.config().chat_template);
  std::ostringstream log;
  job.out = dir.str("full.jsonl");
  EXPECT_EQ(generate_file(m, tok, chat, job, log), 5);
  job.out = dir.str("resumed.jsonl");
  job.stop_after_prompts = 2;
  EXPECT_EQ(generate_file(m, tok, chat, job, log), 2);
  std::ofstream(job.out, std::ios::app) << "{\"prompt\": \"half a li";  // a crash mid-write
  job.stop_after_prompts = 0;
  EXPECT_EQ(generate_file(m, tok, chat, job, log), 3);
  // batch_prompts 0 (the pipeline's and a library caller's path; the CLI refuses it earlier) is a named error,
  // not a division by zero in the resume check.
  job.batch_prompts = 0;
  try {
    generate_file(m, tok, chat, job, log);
    ADD_FAILURE() << "no error for batch_prompts = 0";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("batch_prompts (--batch-prompts) must be > 0, found 0"));
  }
  job.batch_prompts = 2;
  EXPECT_THAT(log.str(), ::testing::HasSubstr("removing a partial last line"));
  EXPECT_EQ(io::read_file(dir.str("full.jsonl")), io::read_file(job.out));
  // Every line: the prompt and n decodable responses.
  std::ifstream in(job.out);
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) EXPECT_EQ(nlohmann::json::parse(line)["responses"].size(), 3u);
  EXPECT_EQ(lines, 5);
  EXPECT_EQ(generate_file(m, tok, chat, job, log), 0) << "a finished file is left alone";
}

// The file is a function of the input, the model and the seed: batch sizes 1, 7 and 32 and a run resumed
// with another batch size all write the same bytes (each sample draws from its own stream).
TEST(GenerateFile, SameFileForAnyBatchSizeAndResumePoint) {
  test::TempDir dir;
  const auto m = tiny_model();
  const auto tok = text::Tokenizer::from_dir(test::fixtures_dir() + "/tokenizers/qwen2");
  write_prompts(dir.str("prompts.jsonl"), 10, [](int i) { return std::string(static_cast<size_t>(i % 4), '?'); });
  GenerateJob job;
  job.data = dir.str("prompts.jsonl");
  job.sampling.n = 2, job.sampling.max_new_tokens = 8, job.sampling.temperature = 1.0, job.sampling.seed = 11;
  const auto chat = text::choose_chat_template(tok.config(), "");
  std::ostringstream log;
  std::string first;
  for (int64_t b : {1, 7, 32}) {
    job.batch_prompts = b;
    job.out = dir.str("b" + std::to_string(b) + ".jsonl");
    EXPECT_EQ(generate_file(m, tok, chat, job, log), 10);
    if (first.empty()) first = io::read_file(job.out);
    EXPECT_EQ(io::read_file(job.out), first) << "batch_prompts " << b;
  }
  job.out = dir.str("continuous.jsonl");
  job.batch_prompts = 2, job.continuous_batching = true;  // rows refilled from waiting prompts
  EXPECT_EQ(generate_file(m, tok, chat, job, log), 10);
  EXPECT_EQ(io::read_file(job.out), first) << "continuous batching";
  job.continuous_batching = false;
  job.out = dir.str("resumed.jsonl");
  job.batch_prompts = 3, job.stop_after_prompts = 3;  // 3 prompts written …
  EXPECT_EQ(generate_file(m, tok, chat, job, log), 3);
  job.batch_prompts = 4, job.stop_after_prompts = 0;  // … then the rest in batches of another size
  EXPECT_EQ(generate_file(m, tok, chat, job, log), 7);
  EXPECT_EQ(io::read_file(job.out), first);
}

// A ChatML model whose eos_token is <|endoftext|> still stops at the end of turn SFT taught it.
TEST(GenerateFile, SamplingStopsAtTheChatFormatsEndOfTurn) {
  test::TempDir dir;
  const std::string src = test::fixtures_dir() + "/tokenizers/qwen2";
  io::copy_file(src + "/tokenizer.json", dir.str("tokenizer.json"));
  auto cfg = io::read_json_file(src + "/tokenizer_config.json");
  cfg["eos_token"] = "<|endoftext|>";  // a base model's EOS
  io::write_json_file(dir.str("tokenizer_config.json"), cfg);
  const auto tok = text::Tokenizer::from_dir(dir.str());
  const int64_t im_end = *tok.token_to_id("<|im_end|>"), endoftext = *tok.token_to_id("<|endoftext|>");
  const auto own = text::choose_chat_template(tok.config(), "");
  EXPECT_THAT(stop_token_ids(tok, own, {}), ::testing::UnorderedElementsAre(im_end, endoftext));
  EXPECT_THAT(stop_token_ids(tok, {text::ChatFormat::chatml, ""}, {}), ::testing::UnorderedElementsAre(im_end, endoftext));
  EXPECT_THAT(stop_token_ids(tok, {text::ChatFormat::hh, ""}, {7}), ::testing::UnorderedElementsAre(endoftext, 7))
      << "hh has no end of turn: the tokenizer's and the model's EOS";
}


}  // namespace
}  // namespace hps::generate

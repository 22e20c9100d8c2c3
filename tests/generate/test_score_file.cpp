// score_file: the reward model's scores written beside each response; resumable; in place.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "data/batching.hpp"
#include "data/inspect.hpp"
#include "generate/score_file.hpp"
#include "io/jsonl.hpp"
#include "model/load.hpp"
#include "model/model_helpers.hpp"

namespace hps::generate {
namespace {

TEST(ScoreFile, WritesTheRewardModelsScoresResumesAndWorksInPlace) {
  test::TempDir dir;
  const auto j = io::read_json_file(test::fixtures_dir() + "/train/tiny_qwen2_config.json");
  auto cfg = model::parse_model_config(j, "tiny");
  cfg.architecture = "Qwen2ForSequenceClassification", cfg.head = model::Head::sequence_classification, cfg.num_labels = 1;
  const auto rm = model::random_model(cfg, at::kCPU, at::kFloat, 0.1, 5);
  const auto tok = text::Tokenizer::from_dir(test::fixtures_dir() + "/tokenizers/qwen2");
  const text::ChatTemplate chat = text::detect_chat_template(tok.config().chat_template);
  {
    std::ofstream p(dir.str("gen.jsonl"));
    for (int i = 0; i < 5; ++i)
      p << nlohmann::json{{"prompt", "Q" + std::to_string(i)}, {"responses", {"yes", "no thanks", ""}}, {"extra", i}}.dump() << "\n";
  }
  ScoreJob job{dir.str("gen.jsonl"), dir.str("scored.jsonl"), 4, 256, 2};
  std::ostringstream log;
  EXPECT_EQ(score_file(rm, tok, chat, job, log), 5);
  std::vector<nlohmann::json> scored;
  io::for_each_jsonl(job.out, [&](int64_t, const nlohmann::json& r) { scored.push_back(r); });
  ASSERT_EQ(scored.size(), 5u);
  EXPECT_EQ(scored[3]["extra"], 3) << "other fields are kept";
  ASSERT_EQ(scored[3]["rewards"].size(), 3u);
  // The score equals the reward model's on the sequence as train-rm encodes it.
  const auto ds = data::read_dataset(job.data, {data::Format::ranked, data::OnBadRecord::error, data::PkuRanking::helpful, 1, true});
  const data::Encoder enc(tok, chat, {128, 256, true});
  const auto ex = enc.encode(ds.records[3], {1});
  std::vector<int64_t> seq = ex.prompt;
  seq.insert(seq.end(), ex.responses[0].begin(), ex.responses[0].end());
  const at::Tensor ids = at::tensor(seq, at::kLong).view({1, -1});
  EXPECT_NEAR(scored[3]["rewards"][1].get<double>(), rm.scores(ids, at::ones_like(ids)).item<double>(), 1e-5);
  // Resume: an interrupted run left two scored lines and half a third.
  const std::string full = io::read_file(job.out);
  job.out = dir.str("resumed.jsonl");
  const size_t two = full.find('\n', full.find('\n') + 1) + 1;
  io::write_file_atomic(job.out + ".partial", [&](std::ostream& o) { o << full.substr(0, two) << "{\"prompt\": \"Q2"; });
  EXPECT_EQ(score_file(rm, tok, chat, job, log), 3);
  EXPECT_EQ(io::read_file(job.out), full);
  EXPECT_FALSE(io::file_exists(job.out + ".partial"));
  // In place.
  job.out = job.data;
  score_file(rm, tok, chat, job, log);
  EXPECT_EQ(io::read_file(job.data), full);
}

}  // namespace
}  // namespace hps::generate

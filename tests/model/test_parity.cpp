// Parity with transformers / PEFT on the committed tiny models (fp32, tolerance 1e-4 on logits).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/atomic_file.hpp"
#include "model/load.hpp"
#include "model/logprobs.hpp"
#include "model/lora.hpp"
#include "model/model_helpers.hpp"

namespace hps::model {
namespace {

using test::expected;
using test::max_err_on_real;
using test::model_dir;

constexpr double kLogitTol = 1e-4;

class Arch : public ::testing::TestWithParam<std::string> {};

TEST_P(Arch, LogitsMatchTransformers) {
  const auto e = expected(GetParam());
  Decoder d = load_model(model_dir(GetParam()));
  at::Tensor logits = d.logits(e.at("input_ids"), e.at("attention_mask"));  // positions derived from the mask
  EXPECT_LE(max_err_on_real(logits, e.at("logits"), e.at("attention_mask")), kLogitTol);
  // Passing transformers' position ids explicitly gives the same.
  at::Tensor again = d.logits(e.at("input_ids"), e.at("attention_mask"), e.at("position_ids"));
  EXPECT_LE(max_err_on_real(again, e.at("logits"), e.at("attention_mask")), kLogitTol);
}

TEST_P(Arch, SequenceLogprobsMatchTransformers) {
  const auto e = expected(GetParam());
  Decoder d = load_model(model_dir(GetParam()));
  for (int64_t chunk : {0, 1, 3}) {  // default chunking, one row per chunk, ragged chunks
    SeqLogprobs lp = sequence_logprobs(d, e.at("input_ids"), e.at("attention_mask"), e.at("response_mask"), chunk);
    EXPECT_LE((lp.sum.to(at::kDouble) - e.at("seq_logp")).abs().max().item<double>(), 1e-4) << "chunk " << chunk;
    EXPECT_TRUE(at::equal(lp.count.to(at::kDouble), e.at("seq_count")));
  }
}

TEST_P(Arch, RewardHeadScoresMatchTransformers) {
  const auto e = expected(GetParam() + "-reward");
  Decoder d = load_model(model_dir(GetParam() + "-reward"));
  EXPECT_EQ(d.config.head, Head::sequence_classification);
  at::Tensor s = d.scores(e.at("input_ids"), e.at("attention_mask"));  // [B, 1]
  EXPECT_LE((s.to(at::kDouble) - e.at("scores").to(at::kDouble)).abs().max().item<double>(), kLogitTol);
}

TEST_P(Arch, HalfPrecisionWeightsStayClose) {
  const auto e = expected(GetParam());
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    Decoder d = load_model(model_dir(GetParam()), {at::kCPU, dtype});
    EXPECT_EQ(d.dtype(), dtype);
    at::Tensor logits = d.logits(e.at("input_ids"), e.at("attention_mask"));
    EXPECT_EQ(logits.scalar_type(), dtype);
    EXPECT_LE(max_err_on_real(logits, e.at("logits"), e.at("attention_mask")), 0.15) << c10::toString(dtype);
  }
}

TEST_P(Arch, SavedModelLoadsToTheSameLogits) {
  test::TempDir dir;
  Decoder d = load_model(model_dir(GetParam()));
  save_model(d, io::read_json_file(model_dir(GetParam()) + "/config.json"), dir.str(), /*max_shard_bytes=*/30000);
  Decoder back = load_model(dir.str());
  const auto e = expected(GetParam());
  EXPECT_TRUE(at::equal(back.logits(e.at("input_ids"), e.at("attention_mask")),
                        d.logits(e.at("input_ids"), e.at("attention_mask"))));
}

INSTANTIATE_TEST_SUITE_P(Models, Arch, ::testing::Values("llama", "qwen2", "mistral"));

class Lora : public ::testing::TestWithParam<std::string> {};

TEST_P(Lora, AdapterLogitsMatchPeft) {
  const auto e = expected(GetParam() + "-lora");
  Decoder d = load_model(model_dir(GetParam()));
  load_lora(d, model_dir(GetParam() + "-lora"));
  at::Tensor logits = d.logits(e.at("input_ids"), e.at("attention_mask"));
  EXPECT_LE(max_err_on_real(logits, e.at("logits"), e.at("attention_mask")), kLogitTol);
  SeqLogprobs lp = sequence_logprobs(d, e.at("input_ids"), e.at("attention_mask"), e.at("response_mask"));
  EXPECT_LE((lp.sum.to(at::kDouble) - e.at("seq_logp")).abs().max().item<double>(), 1e-4);
}

TEST_P(Lora, DisabledAdapterIsTheBaseModel) {
  const auto base = expected(GetParam());
  Decoder d = load_model(model_dir(GetParam()));
  load_lora(d, model_dir(GetParam() + "-lora"));
  d.state.lora_enabled = false;
  at::Tensor logits = d.logits(base.at("input_ids"), base.at("attention_mask"));
  EXPECT_LE(max_err_on_real(logits, base.at("logits"), base.at("attention_mask")), kLogitTol);
}

TEST_P(Lora, MergedEqualsUnmerged) {
  const auto e = expected(GetParam() + "-lora");
  Decoder d = load_model(model_dir(GetParam()));
  load_lora(d, model_dir(GetParam() + "-lora"));
  at::Tensor unmerged = d.logits(e.at("input_ids"), e.at("attention_mask"));
  merge_lora(d);
  EXPECT_FALSE(d.has_lora());
  at::Tensor merged = d.logits(e.at("input_ids"), e.at("attention_mask"));
  EXPECT_LE(max_err_on_real(merged, unmerged, e.at("attention_mask")), kLogitTol);  // fp32 reassociation
}

TEST_P(Lora, SavedAdapterReloadsIdentically) {
  test::TempDir dir;
  Decoder d = load_model(model_dir(GetParam()));
  LoraConfig cfg = load_lora(d, model_dir(GetParam() + "-lora"));
  save_lora(d, cfg, dir.str());
  Decoder again = load_model(model_dir(GetParam()));
  LoraConfig cfg2 = load_lora(again, dir.str());
  EXPECT_EQ(cfg2.rank, cfg.rank);
  EXPECT_EQ(cfg2.scale(), cfg.scale());
  const auto e = expected(GetParam() + "-lora");
  EXPECT_TRUE(at::equal(again.logits(e.at("input_ids"), e.at("attention_mask")),
                        d.logits(e.at("input_ids"), e.at("attention_mask"))));
}

INSTANTIATE_TEST_SUITE_P(Models, Lora, ::testing::Values("llama", "qwen2"));

}  // namespace
}  // namespace hps::model

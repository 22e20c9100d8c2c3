// Padding-free packing with shared prompts (model/packing.hpp) against the padded path it replaces: the same
// per-row log-probs, gradients and reward scores on the fixture models (fp32, ≤ 1e-5), over ragged batches —
// prompts with 1…3 responses and prompt-only rows, prompts longer than responses and the reverse, both
// padding sides — and the packed batch forwards each shared prompt once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "data/batching.hpp"
#include "model/load.hpp"
#include "model/logprobs.hpp"
#include "model/lora.hpp"
#include "model/model_helpers.hpp"
#include "model/packing.hpp"

namespace hps::model {
namespace {

using test::message_of;
using test::model_dir;

std::vector<int64_t> random_ids(int64_t n, int64_t vocab) {
  auto t = at::randint(3, vocab, {n}, at::kLong);
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n};
}

// Three prompts: a long prompt with 3 short responses, a short prompt with 1 long response (2 prompt-only
// rows in a k = 3 batch), a middle one with 2 responses of different lengths.
data::Batch ragged_batch(int64_t vocab, data::PadSide side) {
  at::manual_seed(7);
  std::vector<data::EncodedExample> ex(3);
  const std::vector<std::pair<int64_t, std::vector<int64_t>>> shape = {{11, {3, 5, 2}}, {2, {12}}, {6, {4, 7}}};
  for (size_t i = 0; i < ex.size(); ++i) {
    ex[i].line = static_cast<int64_t>(i + 1);
    ex[i].prompt = random_ids(shape[i].first, vocab);
    for (size_t j = 0; j < shape[i].second.size(); ++j) {
      ex[i].responses.push_back(random_ids(shape[i].second[j], vocab));
      ex[i].response_index.push_back(static_cast<int64_t>(j));
      ex[i].rewards.push_back(static_cast<double>(j));
    }
  }
  return data::collate(ex, 0, side);
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>(); }

TEST(Packing, LogprobsEqualThePaddedPathOnEveryArchitectureAndPaddingSide) {
  for (const std::string arch : {"llama", "qwen2", "mistral"}) {  // mistral: sliding window 5 < the lengths
    Decoder d = load_model(model_dir(arch));
    for (auto side : {data::PadSide::right, data::PadSide::left}) {
      const data::Batch b = ragged_batch(d.config.vocab_size, side);
      const SeqLogprobs padded = sequence_logprobs(d, b.ids, b.mask, b.response_mask, Layout::padded);
      const SeqLogprobs packed = sequence_logprobs(d, b.ids, b.mask, b.response_mask, Layout::packed);
      EXPECT_LE(max_diff(packed.sum, padded.sum), 1e-5) << arch;
      EXPECT_TRUE(at::equal(packed.count, padded.count)) << arch;
      // The first row's response scored alone, unpadded: what packing must reproduce for every row.
      const int64_t T = 11 + 3;
      const at::Tensor ids = b.ids.narrow(0, 0, 1), mask = b.mask.narrow(0, 0, 1), resp = b.response_mask.narrow(0, 0, 1);
      const at::Tensor keep = mask.squeeze(0).nonzero().squeeze(1);
      const SeqLogprobs alone = sequence_logprobs(d, ids.index_select(1, keep), mask.index_select(1, keep),
                                                  resp.index_select(1, keep), Layout::padded);
      ASSERT_EQ(keep.numel(), T);
      EXPECT_LE(max_diff(packed.sum.narrow(0, 0, 1), alone.sum), 1e-5) << arch;
    }
  }
}

TEST(Packing, EachSharedPromptIsForwardedOnce) {
  const data::Batch b = ragged_batch(128, data::PadSide::right);
  const PackedRows p = pack_rows(b.ids, b.mask, b.response_mask, at::kCPU);
  // Prompts 11 + 2 + 6, responses 3+5+2 + 12 + 4+7; prompt-only rows add nothing.
  EXPECT_EQ(p.input.ids.numel(), 19 + 33);
  EXPECT_EQ(p.rows, 9);
  EXPECT_EQ(p.padded, 9 * 16);
  EXPECT_EQ(p.count.sum().item<int64_t>(), 33);
  ASSERT_EQ(p.input.blocks.size(), 2u);  // prompt blocks, response blocks
  EXPECT_EQ(p.input.blocks[0].count, 3);
  EXPECT_EQ(p.input.blocks[1].count, 6);
  // Every token is the query of exactly one slot.
  const at::Tensor s = p.input.scatter;
  EXPECT_EQ(std::get<0>(at::_unique(s)).numel(), s.numel());
  EXPECT_GE(s.min().item<int64_t>(), 0);
}

TEST(Packing, VarlenLayoutListsEachBlockUnpadded) {
  const data::Batch b = ragged_batch(128, data::PadSide::right);
  const VarlenInput v = pack_rows(b.ids, b.mask, b.response_mask, at::kCPU).input.varlen;
  // 3 prompts (11, 2, 6 tokens), then 6 responses (3, 5, 2 | 12 | 4, 7) each with its prompt's keys before it.
  const std::vector<int32_t> cu_q{0, 11, 13, 19, 22, 27, 29, 41, 45, 52};
  const std::vector<int32_t> cu_k{0, 11, 13, 19, 33, 49, 62, 76, 86, 99};
  EXPECT_TRUE(at::equal(v.cu_q, at::tensor(cu_q, at::kInt)));
  EXPECT_TRUE(at::equal(v.cu_k, at::tensor(cu_k, at::kInt)));
  EXPECT_EQ(v.max_q, 12);
  EXPECT_EQ(v.max_k, 16);
  // order inverts q_index: every token is one query row.
  EXPECT_TRUE(at::equal(v.q_index.index_select(0, v.order), at::arange(52, at::kLong)));
  // The second response's keys: prompt 0 (tokens 0…10), then its own 5 tokens.
  const at::Tensor keys = v.k_index.narrow(0, 33, 16);
  EXPECT_TRUE(at::equal(keys.narrow(0, 0, 11), at::arange(11, at::kLong)));
  EXPECT_TRUE(at::equal(keys.narrow(0, 11, 5), v.q_index.narrow(0, 22, 5)));
}

std::vector<at::Tensor> grads(Decoder& d, const data::Batch& b, Layout layout, const at::Device& dev = at::kCPU) {
  for (auto& t : d.trainable_parameters()) t.mutable_grad() = at::Tensor();
  const SeqLogprobs lp = sequence_logprobs(d, b.ids.to(dev), b.mask.to(dev), b.response_mask.to(dev), layout);
  (lp.sum * at::arange(1, lp.sum.size(0) + 1, lp.sum.options())).sum().backward();  // rows weighted differently
  std::vector<at::Tensor> g;
  for (auto& t : d.trainable_parameters()) g.push_back(t.grad().cpu());
  return g;
}

TEST(Packing, GradientsEqualThePaddedPathWithLoraAndFullWithCheckpointingOnAndOff) {
  for (const std::string name : {"llama-lora", "qwen2"}) {
    const bool lora = name == "llama-lora";
    Decoder d = load_model(model_dir(lora ? "llama" : name));
    if (lora) load_lora(d, model_dir(name));  // its dropout is off: state.training is false
    d.set_requires_grad(!lora, lora);
    const data::Batch b = ragged_batch(d.config.vocab_size, data::PadSide::right);
    const auto ref = grads(d, b, Layout::padded);
    for (bool ckpt : {false, true}) {
      d.state.grad_checkpointing = ckpt;
      const auto got = grads(d, b, Layout::packed);
      ASSERT_EQ(got.size(), ref.size());
      double err = 0, scale = 0;
      for (size_t i = 0; i < got.size(); ++i)
        err = std::max(err, max_diff(got[i], ref[i])), scale = std::max(scale, ref[i].abs().max().item<double>());
      EXPECT_GT(scale, 0) << name;
      EXPECT_LE(err, 1e-5 * std::max(1.0, scale)) << name << " checkpointing " << ckpt;
    }
  }
}

// The varlen form (flash attention's layout; on CPU its exact per-sequence reference) computes what the
// padded blocks compute: log-probs on every architecture (mistral's window crosses the sequences; fp32, 1e-5)
// and gradients with LoRA and full fine-tuning, checkpointing on and off (float64, to 1e-9 relative: in fp32
// the two summation orders differ by ~1e-5 relative on LoRA-B gradients of magnitude 47).
TEST(Packing, VarlenFormEqualsTheBlocks) {
  for (const std::string arch : {"llama", "qwen2", "mistral"}) {
    Decoder d = load_model(model_dir(arch));
    const data::Batch b = ragged_batch(d.config.vocab_size, data::PadSide::left);
    d.state.packed_attention = PackedAttention::blocks;
    const SeqLogprobs blocks = sequence_logprobs(d, b.ids, b.mask, b.response_mask, Layout::packed);
    d.state.packed_attention = PackedAttention::varlen;
    const SeqLogprobs varlen = sequence_logprobs(d, b.ids, b.mask, b.response_mask, Layout::packed);
    EXPECT_LE(max_diff(varlen.sum, blocks.sum), 1e-5) << arch;
  }
  for (const std::string name : {"llama-lora", "qwen2"}) {
    const bool lora = name == "llama-lora";
    Decoder d = load_model(model_dir(lora ? "llama" : name), {at::kCPU, at::kDouble});
    if (lora) load_lora(d, model_dir(name));
    d.set_requires_grad(!lora, lora);
    const data::Batch b = ragged_batch(d.config.vocab_size, data::PadSide::right);
    d.state.packed_attention = PackedAttention::blocks;
    const auto ref = grads(d, b, Layout::packed);
    d.state.packed_attention = PackedAttention::varlen;
    for (bool ckpt : {false, true}) {
      d.state.grad_checkpointing = ckpt;
      const auto got = grads(d, b, Layout::packed);
      ASSERT_EQ(got.size(), ref.size());
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_LE(max_diff(got[i], ref[i]), 1e-9 * std::max(1.0, ref[i].abs().max().item<double>())) << name << " " << i;
    }
  }
}

TEST(Packing, RewardScoresEqualThePaddedPath) {
  for (const std::string arch : {"llama-reward", "qwen2-reward", "mistral-reward"}) {
    Decoder rm = load_model(model_dir(arch));
    data::Batch b = ragged_batch(rm.config.vocab_size, data::PadSide::right);
    // A response ending in the pad token: both paths score the token before it (transformers' rule).
    if (rm.config.pad_token_id) {
      const int64_t last = b.mask[0].sum().item<int64_t>() - 1;
      b.ids.index_put_({0, last}, *rm.config.pad_token_id);
    }
    const at::Tensor padded = sequence_scores(rm, b.ids, b.mask, b.response_mask, Layout::padded);
    const at::Tensor packed = sequence_scores(rm, b.ids, b.mask, b.response_mask, Layout::packed);
    EXPECT_LE(max_diff(packed, padded), 1e-5) << arch;
  }
}

// On CUDA (skipped without a GPU; scripts/gpu_check.sh runs it): packed attention — blocks through CUDA's SDPA
// in fp32, flash attention's varlen kernel in bf16 — gives the padded path's log-probs (fp32 to 1e-4, bf16
// within its rounding: 2 % of a row's sum); flash equals the blocks in bf16, forward and LoRA gradients; and,
// with LoRA in fp32, the packed gradients equal the padded path's.
TEST(Packing, CudaPackedRowsEqualThePaddedPath) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device: the CPU tests above cover packing";
  const at::Device cuda(at::kCUDA, 0);
  for (const std::string arch : {"llama", "qwen2", "mistral"})
    for (const auto dtype : {at::kFloat, at::kBFloat16}) {
      Decoder d = load_model(model_dir(arch), {cuda, dtype});
      const data::Batch b = ragged_batch(d.config.vocab_size, data::PadSide::right);
      const at::Tensor ids = b.ids.to(cuda), mask = b.mask.to(cuda), resp = b.response_mask.to(cuda);
      const at::Tensor padded = sequence_logprobs(d, ids, mask, resp, Layout::padded).sum.cpu().to(at::kDouble);
      const at::Tensor packed = sequence_logprobs(d, ids, mask, resp, Layout::packed).sum.cpu().to(at::kDouble);
      const double tol = dtype == at::kFloat ? 1e-4 : 2e-2;
      EXPECT_LE(((packed - padded).abs() / padded.abs().clamp_min(1.0)).max().item<double>(), tol) << arch << " " << dtype;
    }
  // bf16: flash attention's varlen kernel (the automatic choice) against the blocks through SDPA, forward and
  // LoRA gradients, within bf16's rounding.
  for (const std::string arch : {"llama", "qwen2", "mistral"}) {
    Decoder d = load_model(model_dir(arch), {cuda, at::kBFloat16});
    const data::Batch b = ragged_batch(d.config.vocab_size, data::PadSide::right);
    const at::Tensor ids = b.ids.to(cuda), mask = b.mask.to(cuda), resp = b.response_mask.to(cuda);
    d.state.packed_attention = PackedAttention::blocks;
    const at::Tensor blocks = sequence_logprobs(d, ids, mask, resp, Layout::packed).sum.cpu().to(at::kDouble);
    d.state.packed_attention = PackedAttention::automatic;
    const at::Tensor flash = sequence_logprobs(d, ids, mask, resp, Layout::packed).sum.cpu().to(at::kDouble);
    EXPECT_LE(((flash - blocks).abs() / blocks.abs().clamp_min(1.0)).max().item<double>(), 2e-2) << arch << " flash";
  }
  {
    Decoder d = load_model(model_dir("llama"), {cuda, at::kBFloat16});
    load_lora(d, model_dir("llama-lora"));
    d.set_requires_grad(false, true);
    const data::Batch b = ragged_batch(d.config.vocab_size, data::PadSide::right);
    d.state.packed_attention = PackedAttention::blocks;
    const auto ref = grads(d, b, Layout::packed, cuda);
    d.state.packed_attention = PackedAttention::automatic;
    const auto got = grads(d, b, Layout::packed, cuda);
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_LE(max_diff(got[i], ref[i]), 5e-2 * std::max(1.0, ref[i].abs().max().item<double>())) << "flash grad " << i;
  }
  Decoder d = load_model(model_dir("llama"), {cuda, at::kFloat});
  load_lora(d, model_dir("llama-lora"));
  d.set_requires_grad(false, true);
  const data::Batch b = ragged_batch(d.config.vocab_size, data::PadSide::right);
  const auto ref = grads(d, b, Layout::padded, cuda), got = grads(d, b, Layout::packed, cuda);
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_LE(max_diff(got[i], ref[i]), 1e-4 * std::max(1.0, ref[i].abs().max().item<double>())) << i;
}

TEST(Packing, RowWithoutARealTokenIsAnError) {
  const at::Tensor ids = at::ones({2, 3}, at::kLong), mask = at::tensor({1, 1, 1, 0, 0, 0}, at::kLong).view({2, 3});
  EXPECT_THAT(message_of<InputError>([&] { pack_rows(ids, mask, at::zeros_like(mask), at::kCPU); }),
              ::testing::HasSubstr("row 1 has no real token"));
}

}  // namespace
}  // namespace hps::model

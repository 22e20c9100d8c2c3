// safetensors: round trips for every dtype, zero-copy loading, and one hand-corrupted file per rule.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/safetensors.hpp"
#include "test_util.hpp"

namespace hps::io {
namespace {

using test::message_of;
using test::TempDir;

// Writes [u64 length][header][data] by hand; `length` overrides the header's real length.
void write_raw(const std::string& path, const std::string& header, const std::string& data,
               std::optional<uint64_t> length = std::nullopt) {
  std::ofstream f(path, std::ios::binary);
  const uint64_t n = length ? *length : header.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>(n >> (8 * i)));
  f << header << data;
}

std::string open_error(const std::string& header, const std::string& data, std::optional<uint64_t> length = {}) {
  TempDir dir;
  write_raw(dir.str("x.safetensors"), header, data, length);
  return message_of<InputError>([&] { SafetensorsFile::open(dir.str("x.safetensors")); });
}

TEST(Safetensors, RoundTripsEveryTorchDtypeAndMetadata) {
  TempDir dir;
  std::map<std::string, at::Tensor> tensors;
  for (auto t : {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16, at::kLong, at::kInt, at::kShort, at::kChar,
                 at::kByte, at::kBool})
    tensors[std::string("t_") + c10::toString(t)] = (at::arange(12, at::kDouble).reshape({3, 4}) - 5).to(t);
  tensors["scalar"] = at::tensor(3.5);
  tensors["empty"] = at::zeros({0, 7});
  tensors["f8"] = at::arange(6, at::kFloat).to(at::kFloat8_e4m3fn);
  const std::string path = dir.str("a.safetensors");
  save_safetensors(path, tensors, {{"format", "pt"}, {"note", "ü"}});
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata().at("note"), "ü");
  EXPECT_EQ(f.data_offset() % 8, 0u) << "header must be padded to 8 bytes";
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    at::Tensor got = f.get(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), t.sizes()) << name;
    EXPECT_TRUE(at::equal(got.to(at::kFloat), t.to(at::kFloat))) << name;
  }
}

TEST(Safetensors, LoadsWithoutCopyingAndInPlaceWritesDoNotTouchTheFile) {
  TempDir dir;
  const std::string path = dir.str("a.safetensors");
  save_safetensors(path, {{"w", at::ones({4, 4})}});
  auto f = SafetensorsFile::open(path);
  at::Tensor a = f.get("w"), b = f.get("w");
  EXPECT_EQ(a.data_ptr(), b.data_ptr()) << "both views must alias the one mapping";
  a.mul_(3);  // copy-on-write page
  EXPECT_TRUE(at::equal(SafetensorsFile::open(path).get("w"), at::ones({4, 4})));
}

TEST(Safetensors, MisalignedTensorIsCopiedNotMisread) {
  TempDir dir;
  // A 1-byte tensor first pushes the F32 tensor to an odd offset (legal per spec).
  std::string data(1, '\x07');
  float vals[2] = {1.5f, -2.0f};
  data.append(reinterpret_cast<const char*>(vals), 8);
  const std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  write_raw(dir.str("m.safetensors"), header, data);
  auto f = SafetensorsFile::open(dir.str("m.safetensors"));
  EXPECT_TRUE(at::equal(f.get("b"), at::tensor({1.5f, -2.0f})));
}

TEST(Safetensors, PythonWrittenFixtureOpens) {
  auto f = SafetensorsFile::open(test::fixtures_dir() + "/models/llama/model.safetensors");
  EXPECT_TRUE(f.contains("model.embed_tokens.weight"));
  EXPECT_EQ(f.info("model.embed_tokens.weight").dtype, "F32");
}

// ---- one corrupted file per validation rule ----

TEST(SafetensorsCorrupt, ShorterThanEightBytes) {
  TempDir dir;
  std::ofstream(dir.str("s.safetensors"), std::ios::binary) << "abc";
  EXPECT_THAT(message_of<InputError>([&] { SafetensorsFile::open(dir.str("s.safetensors")); }),
              ::testing::HasSubstr("3 bytes, shorter than the 8-byte header length"));
}

const std::string kOk = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST(SafetensorsCorrupt, HeaderLengthPastEndOfFile) {
  EXPECT_THAT(open_error(kOk, std::string(8, '\0'), kOk.size() + 100), ::testing::HasSubstr("runs past end of file"));
}

TEST(SafetensorsCorrupt, HeaderLargerThan100MB) {
  EXPECT_THAT(open_error(kOk, std::string(8, '\0'), 200'000'000), ::testing::HasSubstr("exceeds the 100 MB limit"));
}

TEST(SafetensorsCorrupt, HeaderNotUtf8Json) {
  EXPECT_THAT(open_error("{\"a\": \"\xff\xfe\"}", ""), ::testing::HasSubstr("not valid UTF-8 JSON"));
  EXPECT_THAT(open_error("{\"a\": [1, 2", ""), ::testing::HasSubstr("not valid UTF-8 JSON"));
  EXPECT_THAT(open_error("[1, 2]", ""), ::testing::HasSubstr("must be a JSON object"));
  // A header nested 100 000 deep (it crashed `hps model inspect`): a named error.
  std::string deep = "{\"t\": {\"shape\": ";
  deep.append(100000, '[').append("}}");
  EXPECT_THAT(open_error(deep, ""), ::testing::HasSubstr("header: JSON nested deeper than 512 levels"));
}

TEST(SafetensorsCorrupt, DuplicateNames) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_THAT(open_error(h, std::string(8, '\0')), ::testing::HasSubstr("duplicate tensor name 'a'"));
}

TEST(SafetensorsCorrupt, UnknownDtype) {
  EXPECT_THAT(open_error(R"({"a":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')),
              ::testing::HasSubstr("unknown dtype 'F31'"));
  // In the spec but not in torch: rejected with a different, clear message.
  EXPECT_THAT(open_error(R"({"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", std::string(1, '\0')),
              ::testing::HasSubstr("has no torch equivalent"));
}

TEST(SafetensorsCorrupt, BeginAfterEnd) {
  EXPECT_THAT(open_error(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", std::string(8, '\0')),
              ::testing::HasSubstr("begin 8 > end 0"));
}

TEST(SafetensorsCorrupt, GapBetweenTensors) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  EXPECT_THAT(open_error(h, std::string(12, '\0')), ::testing::HasSubstr("gap in data section: bytes [4, 8)"));
}

TEST(SafetensorsCorrupt, OverlappingTensors) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_THAT(open_error(h, std::string(8, '\0')), ::testing::HasSubstr("overlaps the previous tensor"));
}

TEST(SafetensorsCorrupt, ByteSizeDisagreesWithShape) {
  EXPECT_THAT(open_error(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')),
              ::testing::HasSubstr("byte size 8 (data_offsets [0, 8]) != 3 elements × 4 bytes"));
}

TEST(SafetensorsCorrupt, HugeShapeDoesNotOverflow) {
  // 2^32 × 2^32 elements wraps to 0 in 64 bits: must be caught, not accepted as 0 bytes.
  EXPECT_THAT(open_error(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""),
              ::testing::HasSubstr("more elements than fit in 64 bits"));
  EXPECT_THAT(open_error(R"({"a":{"dtype":"F64","shape":[4294967296,1073741824],"data_offsets":[0,0]}})", ""),
              ::testing::HasSubstr("overflows 64-bit byte count"));
  EXPECT_THAT(open_error(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", ""),
              ::testing::HasSubstr("non-negative integers"));
}

TEST(SafetensorsCorrupt, TrailingBytes) {
  EXPECT_THAT(open_error(kOk, std::string(12, '\0')), ::testing::HasSubstr("4 trailing bytes after the last tensor"));
}

TEST(SafetensorsCorrupt, TruncatedData) {
  EXPECT_THAT(open_error(kOk, std::string(5, '\0')), ::testing::HasSubstr("need 8 data bytes but the file has only 5"));
}

TEST(SafetensorsCorrupt, MalformedEntries) {
  EXPECT_THAT(open_error(R"({"a":{"dtype":"F32","shape":[2]}})", ""), ::testing::HasSubstr("tensor 'a'"));
  EXPECT_THAT(open_error(R"({"__metadata__":{"k":1}})", ""), ::testing::HasSubstr("must be a string"));
}

// ---- sharded checkpoints ----

TEST(Checkpoint, ShardedFixtureOpensAndEveryIndexedTensorLoads) {
  auto c = Checkpoint::open(test::fixtures_dir() + "/models/qwen2");
  EXPECT_GT(c.files().size(), 1u);
  for (const auto& n : c.names()) EXPECT_TRUE(c.get(n).defined()) << n;
}

TEST(Checkpoint, SaveShardsAndReadsBack) {
  TempDir dir;
  std::map<std::string, at::Tensor> t{{"a", at::ones({100})}, {"b", at::zeros({100})}, {"c", at::arange(50.0)}};
  save_checkpoint(dir.str(), t, /*max_shard_bytes=*/500);
  EXPECT_TRUE(file_exists(dir.str("model.safetensors.index.json")));
  auto c = Checkpoint::open(dir.str());
  EXPECT_EQ(c.files().size(), 3u);
  for (const auto& [n, v] : t) EXPECT_TRUE(at::equal(c.get(n), v)) << n;
}

TEST(Checkpoint, ResavingInTheOtherLayoutRemovesTheStaleOne) {
  TempDir dir;
  std::map<std::string, at::Tensor> old{{"a", at::zeros({100})}}, fresh{{"a", at::ones({100})}, {"b", at::ones({100})}};
  save_checkpoint(dir.str(), old);
  save_checkpoint(dir.str(), fresh, /*max_shard_bytes=*/500);  // shards now; the old single file must go
  EXPECT_FALSE(file_exists(dir.str("model.safetensors")));
  EXPECT_TRUE(at::equal(Checkpoint::open(dir.str()).get("a"), at::ones({100})));
  save_checkpoint(dir.str(), old);  // single again; the index and its shards must go
  EXPECT_FALSE(file_exists(dir.str("model.safetensors.index.json")));
  EXPECT_EQ(list_dir(dir.str()), (std::vector<std::string>{"model.safetensors"}));
}

TEST(Checkpoint, TensorMissingFromTheShardTheIndexNames) {
  TempDir dir;
  save_safetensors(dir.str("model-00001-of-00001.safetensors"), {{"a", at::ones({2})}});
  std::ofstream(dir.str("model.safetensors.index.json"))
      << R"({"weight_map": {"a": "model-00001-of-00001.safetensors", "b": "model-00001-of-00001.safetensors"}})";
  EXPECT_THAT(message_of<InputError>([&] { Checkpoint::open(dir.str()); }),
              ::testing::HasSubstr("tensor 'b' is mapped to"));
}

TEST(Checkpoint, ShardHoldsTensorTheIndexDoesNotList) {
  TempDir dir;
  save_safetensors(dir.str("s1.safetensors"), {{"a", at::ones({2})}, {"extra", at::ones({1})}});
  std::ofstream(dir.str("model.safetensors.index.json")) << R"({"weight_map": {"a": "s1.safetensors"}})";
  EXPECT_THAT(message_of<InputError>([&] { Checkpoint::open(dir.str()); }),
              ::testing::HasSubstr("holds tensor 'extra'"));
}

TEST(Checkpoint, MissingShardFileAndNoCheckpoint) {
  TempDir dir;
  EXPECT_THAT(message_of<InputError>([&] { Checkpoint::open(dir.str()); }),
              ::testing::HasSubstr("neither model.safetensors nor"));
  std::ofstream(dir.str("model.safetensors.index.json")) << R"({"weight_map": {"a": "gone.safetensors"}})";
  EXPECT_THAT(message_of<InputError>([&] { Checkpoint::open(dir.str()); }), ::testing::HasSubstr("gone.safetensors"));
}

}  // namespace
}  // namespace hps::io

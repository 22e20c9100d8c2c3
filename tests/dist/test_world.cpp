// torchrun's contract: the launch read from RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (none: a
// plain run), malformed values named; a single-process World's collectives are the identity. (Two-process
// runs over Gloo: tests/train/ddp_equivalence.sh.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "core/error.hpp"
#include "dist/world.hpp"
#include "test_util.hpp"

namespace hps::dist {
namespace {

using ::testing::HasSubstr;

std::optional<Launch> launch(const std::map<std::string, std::string>& env) {
  return launch_from([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

std::string error_of(const std::map<std::string, std::string>& env) {
  return test::message_of<ConfigError>([&] { launch(env); });
}

TEST(Launch, WithoutWorldSizeIsAPlainRun) { EXPECT_FALSE(launch({{"RANK", "3"}})); }

TEST(Launch, ReadsTorchrunsVariables) {
  const auto l = launch({{"WORLD_SIZE", "8"}, {"RANK", "5"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node0"},
                         {"MASTER_PORT", "29400"}, {"HPS_DIST_TIMEOUT", "30"}});
  ASSERT_TRUE(l);
  EXPECT_EQ(l->world_size, 8);
  EXPECT_EQ(l->rank, 5);
  EXPECT_EQ(l->local_rank, 1);
  EXPECT_EQ(l->master_addr, "node0");
  EXPECT_EQ(l->master_port, 29400);
  EXPECT_EQ(l->timeout.count(), 30);
  const auto d = launch({{"WORLD_SIZE", "2"}, {"RANK", "1"}});
  EXPECT_EQ(d->local_rank, 1);
  EXPECT_EQ(d->master_addr, "127.0.0.1");
  EXPECT_EQ(d->master_port, 29500);
}

TEST(Launch, MalformedValuesAreNamed) {
  EXPECT_THAT(error_of({{"WORLD_SIZE", "2"}}), HasSubstr("RANK is not"));
  EXPECT_THAT(error_of({{"WORLD_SIZE", "2"}, {"RANK", "2"}}), HasSubstr("RANK='2': expected an integer in [0, 1]"));
  EXPECT_THAT(error_of({{"WORLD_SIZE", "two"}, {"RANK", "0"}}), HasSubstr("WORLD_SIZE='two'"));
  EXPECT_THAT(error_of({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "70000"}}), HasSubstr("MASTER_PORT='70000'"));
  EXPECT_THAT(error_of({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_ADDR", ""}}), HasSubstr("MASTER_ADDR is empty"));
}

TEST(World, OneProcessCollectivesAreTheIdentity) {
  const World w;
  EXPECT_FALSE(w.distributed());
  EXPECT_TRUE(w.is_main());
  std::vector<at::Tensor> t{at::arange(3, at::kFloat)};
  w.all_reduce_sum(t);
  w.broadcast(t, 0);
  EXPECT_TRUE(t[0].equal(at::arange(3, at::kFloat)));
  EXPECT_EQ(w.sum({1.5, 2.0}), (std::vector<double>{1.5, 2.0}));
  EXPECT_TRUE(w.any(true));
  EXPECT_FALSE(w.any(false));
  w.check_same("x", "anything");
  EXPECT_EQ(w.describe(), "1 process");
}

}  // namespace
}  // namespace hps::dist

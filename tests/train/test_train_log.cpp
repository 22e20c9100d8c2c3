// metrics.jsonl: a step's line reads back to the same StepLog, and a run's TrainSummary counts what its lines
// say (forwarded responses per prompt, tied prompts, steps without an update).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>

#include <cmath>
#include <sstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "test_util.hpp"
#include "train/train_log.hpp"

namespace hps::train {
namespace {

StepLog step(int64_t n, std::vector<std::vector<int64_t>> responses, int64_t tied = 0) {
  StepLog s;
  s.step = n, s.epoch = 1, s.loss = 0.5 + n, s.gamma = -5, s.grad_norm = n == 2 ? NAN : 1.5;
  s.no_preference = tied, s.no_update = tied == static_cast<int64_t>(responses.size());
  s.lines = {n, n + 1};
  s.responses = std::move(responses);
  return s;
}

TEST(TrainLog, StepLineRoundTrips) {
  const StepLog a = step(3, {{0, 2}, {1, 3, 4}}, 1);
  const StepLog b = step_from_json(to_json(a));
  EXPECT_EQ(to_json(b), to_json(a));
  EXPECT_EQ(b.responses, a.responses);
  EXPECT_TRUE(std::isnan(step_from_json(to_json(step(2, {{0, 1}}))).grad_norm));  // written as null
}

TEST(TrainLog, SummaryCountsEveryLine) {
  test::TempDir dir;
  io::write_file_atomic(dir.str("metrics.jsonl"), [](std::ostream& o) {
    o << to_json(step(1, {{0, 1}, {2, 3}})).dump() << "\n";         // BT / HPS: 2 per prompt
    o << to_json(step(2, {{0, 1, 2, 3}, {0, 1}}, 2)).dump() << "\n";  // both tied: no update
  });
  const TrainSummary t = read_train_summary(dir.path);
  EXPECT_EQ(t.steps, 2);
  EXPECT_EQ(t.prompts, 4);
  EXPECT_EQ(t.responses, 10);
  EXPECT_EQ(*t.responses_per_prompt(), 2.5);
  EXPECT_EQ(t.no_preference, 2);
  EXPECT_EQ(t.no_update_steps, 1);
  io::write_file_atomic(dir.str("metrics.jsonl"), [](std::ostream&) {});
  EXPECT_FALSE(read_train_summary(dir.path).responses_per_prompt());
}

TEST(TrainLog, ResumeDropsATornLastLineAndNamesAnyOtherBadOne) {
  // A run killed (or out of disk) mid-write leaves half a line without its newline; --resume failed on it
  // with an unnamed JSON error until the file was edited by hand.
  test::TempDir dir;
  TrainConfig cfg;
  cfg.train.out_dir = dir.path;
  const std::string good = to_json(step(1, {{0, 1}})).dump() + "\n" + to_json(step(2, {{0, 1}})).dump() + "\n";
  io::write_file_atomic(dir.str("metrics.jsonl"), [&](std::ostream& o) { o << good << "{\"step\": 3, \"lo"; });
  std::ostringstream log;
  { TrainLog t(cfg, /*resume=*/true, 2, 10, log); }
  EXPECT_NE(log.str().find("dropped the torn last line 3 of"), std::string::npos) << log.str();
  EXPECT_EQ(io::read_file(dir.str("metrics.jsonl")), good);
  // A bad line that is not the unfinished last one is an error naming file and line.
  io::write_file_atomic(dir.str("metrics.jsonl"), [&](std::ostream& o) { o << "{\"step\": \n" << good; });
  try {
    TrainLog t(cfg, true, 2, 10, log);
    ADD_FAILURE() << "no error for a torn line in the middle";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:1: invalid JSON"), std::string::npos) << e.what();
  }
}

// A full disk: the write of a step line fails and the run stops with a named error (it went on silently and
// left a torn metrics.jsonl). A file-size limit stands in for the full disk: writes past it fail with EFBIG.
TEST(TrainLog, AFailedMetricsWriteIsANamedError) {
  test::TempDir dir;
  TrainConfig cfg;
  cfg.train.out_dir = dir.path;
  std::ostringstream log;
  TrainLog t(cfg, /*resume=*/false, 0, 1000, log);
  t.step(step(1, {{0, 1}}));
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto previous = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = static_cast<rlim_t>(io::read_file(dir.str("metrics.jsonl")).size() + 10);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string message;
  try {
    for (int64_t i = 2; i < 1000; ++i) t.step(step(i, {{0, 1}}));
  } catch (const InputError& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, previous);
  EXPECT_NE(message.find("cannot write step 2 to " + dir.str("metrics.jsonl")), std::string::npos) << message;
  EXPECT_NE(message.find("disk full?"), std::string::npos) << message;
}

}  // namespace
}  // namespace hps::train

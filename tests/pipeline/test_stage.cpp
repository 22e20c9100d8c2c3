// A pipeline stage's markers decide what a rerun does: skip it, rerun it from scratch (saying what changed),
// resume it in place, or start it over; and the digests of its inputs follow files and upstream stages.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "pipeline/stage.hpp"
#include "test_util.hpp"

namespace hps::pipeline {
namespace {

struct StageRun {
  test::TempDir dir;
  std::ostringstream say, detail;
  Logs logs{say, detail};
  int bodies = 0;

  // Runs stage "s" with `key`; `fail` makes the body throw after writing its partial output.
  std::string stage(const StageKey& key, bool fail = false) {
    say.str("");
    try {
      run_stage(dir.path, "s", key, logs, [&] {
        ++bodies;
        std::ofstream(dir.path + "/s/partial", std::ios::app) << "x";
        if (fail) throw InputError("killed");
      });
    } catch (const InputError&) {
    }
    return say.str();
  }
};

TEST(Stage, SkipsRerunsResumesOrStartsOverByItsRecordedKey) {
  StageRun r;
  const StageKey a{{{"loss.beta", "0.1"}, {"train.lr", "1e-5"}}, {{"data", "d1"}}};
  EXPECT_EQ(r.stage(a), "== s\n== s finished in 0.0 s\n");
  EXPECT_EQ(r.stage(a), "== s: done earlier, skipped\n");
  EXPECT_EQ(r.bodies, 1);

  StageKey b = a;
  b.settings["loss.beta"] = "0.5";
  b.settings["gamma.end"] = "3";
  EXPECT_THAT(r.stage(b), ::testing::StartsWith("== s: settings changed (gamma.end (unset) → 3, loss.beta 0.1 → 0.5), rerunning\n"));
  EXPECT_EQ(io::read_file(r.dir.path + "/s/partial"), "x");  // the folder was emptied first

  StageKey c = b;
  c.inputs["data"] = "d2";
  EXPECT_THAT(r.stage(c, /*fail=*/true), ::testing::StartsWith("== s: inputs changed (data), rerunning\n"));
  // Interrupted with the same key: resumed in place (partial outputs kept); with another: started over.
  EXPECT_EQ(r.stage(c, /*fail=*/true), "== s (resuming the interrupted run)\n");
  EXPECT_EQ(io::read_file(r.dir.path + "/s/partial"), "xx");
  c.settings.erase("gamma.end");
  EXPECT_EQ(r.stage(c), "== s: settings changed (gamma.end 3 → (unset)) since the interrupted run, starting over\n"
                        "== s finished in 0.0 s\n");
  EXPECT_EQ(io::read_file(r.dir.path + "/s/partial"), "x");
  EXPECT_EQ(r.stage(c), "== s: done earlier, skipped\n");
}

TEST(Stage, InputDigestsFollowFilesFoldersAndUpstreamStages) {
  test::TempDir dir;
  const std::string run = dir.path + "/run", file = dir.path + "/data.jsonl";
  EXPECT_EQ(input_digest(run, file), "missing");
  std::ofstream(file) << "a\n";
  const std::string one = input_digest(run, file);
  std::ofstream(file, std::ios::app) << "b\n";
  EXPECT_NE(input_digest(run, file), one);
  // A folder: any file in it.
  io::make_dirs(dir.path + "/model/sub");
  std::ofstream(dir.path + "/model/sub/w") << "1";
  const std::string folder = input_digest(run, dir.path + "/model");
  std::ofstream(dir.path + "/model/sub/w", std::ios::app) << "2";
  EXPECT_NE(input_digest(run, dir.path + "/model"), folder);
  // Under the run folder: the stage's DONE record, whatever file of the stage is named.
  std::ostringstream say, detail;
  const Logs logs{say, detail};
  run_stage(run, "sft", {{{"k", "1"}}, {}}, logs, [] {});
  const std::string sft = input_digest(run, run + "/sft/run/checkpoint-3/model");
  EXPECT_THAT(sft, ::testing::StartsWith("stage sft "));
  EXPECT_EQ(input_digest(run, run + "/sft/other"), sft);
  run_stage(run, "sft", {{{"k", "2"}}, {}}, logs, [] {});
  EXPECT_NE(input_digest(run, run + "/sft/run/checkpoint-3/model"), sft);
}

}  // namespace
}  // namespace hps::pipeline

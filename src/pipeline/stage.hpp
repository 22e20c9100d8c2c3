// A pipeline stage as a unit of work that is safe to rerun: RUN/<stage>/ holds its outputs, STARTED and DONE
// record what it was run with, and a rerun skips it only when nothing it depends on changed.
#pragma once

#include <functional>
#include <map>
#include <ostream>
#include <streambuf>
#include <string>

namespace hps::pipeline {

// Where the pipeline writes: `say` — stage lines, warnings and reports (the terminal and RUN/log.txt);
// `detail` — trainers' steps, generation and scoring progress (RUN/log.txt, plus the terminal when verbose).
struct Logs {
  std::ostream& say;
  std::ostream& detail;
};

// A stream buffer that writes to two streams.
class TeeBuf : public std::streambuf {
 public:
  TeeBuf(std::ostream& a, std::ostream& b) : a_(a), b_(b) {}

 protected:
  int overflow(int c) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int sync() override;

 private:
  std::ostream& a_;
  std::ostream& b_;
};

// What a stage's outputs are a function of, recorded with its markers:
//   settings — "key" → value (TOML text): the config keys the stage reads and the values the pipeline derives
//              for it (seed, device, chat format, prompt budget);
//   inputs   — name → digest (input_digest) of each file, folder or upstream stage it reads.
struct StageKey {
  std::map<std::string, std::string> settings;
  std::map<std::string, std::string> inputs;
};

// The digest of `path` as found now. Under run_dir/<stage>/ it is that stage's DONE record (which changes
// whenever the stage reruns, so a rerun upstream reaches everything downstream); elsewhere the size and
// modification time of the file, or of every file in the folder (cheap for model folders of many GB).
// "missing" when there is nothing at `path`.
std::string input_digest(const std::string& run_dir, const std::string& path);

// Runs `body` as stage `name` in run_dir/name/, deciding by the markers there:
//   DONE with this key                 → skipped ("done earlier, skipped");
//   DONE with another key (or none)    → says what changed, empties the folder, runs;
//   STARTED with this key, no DONE     → runs in the same folder: trainers resume from their checkpoints,
//                                        generation and scoring from their partial files;
//   STARTED with another key, no DONE  → says what changed, empties the folder, starts over.
// Writes name/STARTED (the key) before `body` and name/DONE (the key and the seconds taken) after it.
// Under torchrun every rank calls it and runs `body` (which must do its own rank-0-only writes); the ranks
// decide together and rank 0 alone writes the records, between barriers.
void run_stage(const std::string& run_dir, const std::string& name, const StageKey& key, const Logs& logs,
               const std::function<void()>& body);

// The seconds a finished stage took (its DONE record).
double stage_seconds(const std::string& stage_dir);

}  // namespace hps::pipeline

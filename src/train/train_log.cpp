#include "train/train_log.hpp"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/json_text.hpp"
#include "io/jsonl.hpp"
#include "prefs/losses.hpp"

namespace hps::train {

using nlohmann::json;

json to_json(const StepLog& s) {
  return {{"step", s.step},           {"epoch", s.epoch},         {"loss", s.loss},
          {"accuracy", s.accuracy},   {"rm_dpo", s.rm_dpo},       {"rm_rdpo", s.rm_rdpo},
          {"chosen_reward", s.chosen_reward}, {"rejected_reward", s.rejected_reward},
          {"lr", s.lr},               {"gamma", s.gamma},
          {"grad_norm", std::isfinite(s.grad_norm) ? json(s.grad_norm) : json(nullptr)},
          {"tokens_per_s", s.tokens_per_s}, {"seconds", s.seconds}, {"peak_gib", s.peak_gib}, {"skipped", s.skipped},
          {"no_preference", s.no_preference}, {"no_update", s.no_update}, {"forward_passes", s.forward_passes},
          {"lines", s.lines},         {"responses", s.responses}};
}

StepLog step_from_json(const json& j) {
  StepLog s;
  s.step = j.at("step").get<int64_t>(), s.epoch = j.value("epoch", int64_t{0});
  for (auto [key, v] : {std::pair{"loss", &s.loss}, {"accuracy", &s.accuracy}, {"rm_dpo", &s.rm_dpo},
                        {"rm_rdpo", &s.rm_rdpo}, {"chosen_reward", &s.chosen_reward},
                        {"rejected_reward", &s.rejected_reward}, {"lr", &s.lr}, {"gamma", &s.gamma},
                        {"tokens_per_s", &s.tokens_per_s}, {"seconds", &s.seconds}, {"peak_gib", &s.peak_gib}})
    *v = j.value(key, 0.0);
  s.grad_norm = j.contains("grad_norm") && j["grad_norm"].is_number() ? j["grad_norm"].get<double>() : NAN;
  s.skipped = j.value("skipped", false), s.no_update = j.value("no_update", false);
  s.no_preference = j.value("no_preference", int64_t{0});
  s.forward_passes = j.value("forward_passes", int64_t{0});
  s.lines = j.value("lines", std::vector<int64_t>{});
  s.responses = j.value("responses", std::vector<std::vector<int64_t>>{});
  return s;
}

std::optional<double> TrainSummary::responses_per_prompt() const {
  if (prompts == 0) return std::nullopt;
  return static_cast<double>(responses) / static_cast<double>(prompts);
}

TrainSummary read_train_summary(const std::string& out_dir) {
  TrainSummary t;
  io::for_each_jsonl(out_dir + "/metrics.jsonl", [&](int64_t, const json& j) {
    const StepLog s = step_from_json(j);
    ++t.steps, t.no_preference += s.no_preference, t.no_update_steps += s.no_update, t.skipped_steps += s.skipped;
    for (const auto& r : s.responses) ++t.prompts, t.responses += static_cast<int64_t>(r.size());
  });
  return t;
}

TrainLog::TrainLog(const TrainConfig& cfg, bool resume, int64_t resumed_step, int64_t total, std::ostream& log)
    : cfg_(cfg), log_(log), metrics_path_(cfg.train.out_dir + "/metrics.jsonl"), total_(total),
      tty_(&log == &std::cout && ::isatty(STDOUT_FILENO)), started_(std::chrono::steady_clock::now()) {
  std::vector<std::string> keep;
  if (resume && io::file_exists(metrics_path_)) {
    // Lines of steps up to the resumed one are kept. A last line without its newline is a write the run did
    // not finish (killed, disk full): dropped, and said; any other bad line is an error naming it.
    const std::string text = io::read_file(metrics_path_);
    size_t start = 0;
    for (int64_t n = 1; start < text.size(); ++n) {
      const size_t end = text.find('\n', start);
      const std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
      start = end == std::string::npos ? text.size() : end + 1;
      if (line.empty()) continue;
      nlohmann::json j;
      try {
        j = io::parse_json(line, metrics_path_ + ":" + std::to_string(n));
      } catch (const InputError&) {
        if (end != std::string::npos) throw;
        log_ << "dropped the torn last line " << n << " of " << metrics_path_ << " (an interrupted write)\n";
        break;
      }
      if (step_from_json(j).step <= resumed_step) keep.push_back(line);
    }
  }
  io::write_file_atomic(metrics_path_, [&](std::ostream& o) {
    for (const auto& l : keep) o << l << "\n";
  });
  metrics_.open(metrics_path_, std::ios::app);
  if (!metrics_) throw InputError("cannot open " + metrics_path_ + " for appending: " + std::strerror(errno));
}

void TrainLog::start(size_t train_prompts, size_t eval_prompts, const std::string& converted_from) {
  log_ << to_string(cfg_.task) << " training: " << train_prompts << " prompts (" << eval_prompts << " held out), "
       << total_ << " steps, ";
  if (cfg_.task == Task::preference)
    log_ << prefs::to_string(cfg_.loss.preference) << " × " << prefs::to_string(cfg_.loss.objective);
  else if (cfg_.task == Task::reward)
    log_ << "reward model, " << prefs::to_string(cfg_.loss.preference) << " loss"
         << (converted_from.empty() ? "" : " (score head added to " + converted_from + ")");
  else
    log_ << "SFT on the best responses";
  log_ << (cfg_.use_lora ? ", LoRA" : ", full fine-tuning") << (cfg_.train.packing ? ", packed rows" : ", padded rows");
  if (cfg_.model.device == "cpu") {  // what a shared CPU machine needs to know (core/threads.hpp)
    const char* wait = std::getenv("OMP_WAIT_POLICY");
    log_ << ", CPU threads " << at::get_num_threads() << " (OMP_WAIT_POLICY " << (wait ? wait : "unset") << ")";
  }
  log_ << "\n";
  started_ = std::chrono::steady_clock::now();
}

void TrainLog::skipped_records(const std::vector<data::SkippedRecord>& skipped) {
  if (skipped.empty()) return;
  const std::string list = cfg_.train.out_dir + "/skipped_records.jsonl";
  io::write_file_atomic(list, [&](std::ostream& o) {
    for (const auto& r : skipped) o << json{{"line", r.line}, {"reason", r.reason}}.dump() << "\n";
  });
  log_ << "skipped " << skipped.size() << " bad records of " << cfg_.data.path << " (data.on_bad_record = skip; all in "
       << list << ")\n";
  for (size_t i = 0; i < std::min<size_t>(3, skipped.size()); ++i)
    log_ << "  line " << skipped[i].line << ": " << skipped[i].reason << "\n";
}

void TrainLog::step(const StepLog& s) {
  ++ran_;
  no_preference_ += s.no_preference;
  // A failed write (a full disk) stops the run with its reason: the line would otherwise be lost or torn
  // without a word. The last checkpoint stays; --resume drops a torn last line.
  if (!(metrics_ << to_json(s).dump() << "\n" << std::flush))
    throw InputError("cannot write step " + std::to_string(s.step) + " to " + metrics_path_ + ": " +
                     std::strerror(errno) + " (disk full?); free space and resume with --resume");
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const auto eta = static_cast<int64_t>(elapsed / static_cast<double>(ran_) * static_cast<double>(total_ - s.step));
  if (tty_) {
    const int64_t width = 24, filled = width * s.step / std::max<int64_t>(total_, 1);
    log_ << "\r[" << std::string(static_cast<size_t>(filled), '=') << std::string(static_cast<size_t>(width - filled), ' ')
         << "] ";
  }
  log_ << "step " << s.step << "/" << total_ << "  loss " << s.loss;
  if (cfg_.task != Task::sft) log_ << "  acc " << s.accuracy;
  log_ << "  lr " << s.lr;
  if (cfg_.task == Task::preference) log_ << "  gamma " << s.gamma;
  if (s.no_preference > 0) log_ << "  tied " << s.no_preference;
  log_ << "  ETA " << eta / 60 << "m" << (eta % 60 < 10 ? "0" : "") << eta % 60 << "s"
       << (s.skipped ? "  SKIPPED (non-finite)" : "") << (s.no_update ? "  NO UPDATE (every prompt tied)" : "");
  log_ << (tty_ && !s.skipped && s.step < total_ ? "   " : "\n") << std::flush;
}

void TrainLog::eval(const EvalLog& e) {
  log_ << "eval step " << e.step << "  loss " << e.loss << "  acc " << e.accuracy << "\n";
}

void TrainLog::ties() const {
  // Never silently: prompts whose responses all tie train nothing (loss.ties = exclude).
  if (no_preference_ > 0)
    log_ << no_preference_ << " prompt(s) in this run's steps had responses of one reward only (loss.ties = exclude): "
         << "no preference, no loss term (per step: 'no_preference' in " << metrics_path_ << ")\n";
}

}  // namespace hps::train

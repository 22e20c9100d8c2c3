// Evaluation as a stage: evaluation itself (eval/) computes on numbers; this stage loads the policy and the
// reference, scores the sequences evaluation asks for (eval::model_requests) and hands it the log-probs.
// `hps eval` and the pipeline's eval_<method> stages both run it.
#pragma once

#include <ostream>
#include <string>

#include "dist/world.hpp"
#include "eval/evaluate.hpp"

namespace hps::pipeline {

// The models behind the margins and the KL. Without policy and reference (or without a test set) those
// metrics are left out.
struct EvalModels {
  std::string policy, adapter, reference;
  std::string tokenizer;    // default: the policy folder
  std::string chat_format;  // default: the tokenizer's own chat_template (Jinja)
  std::string device = "cpu";
};

// The requests' log-probs under the policy (with its adapter) and the reference, batched. In a process group
// each rank scores a contiguous share of each request list and every rank gets them all, in order.
eval::ModelScores score_requests(const EvalModels& models, const eval::ModelRequests& requests, const dist::World& world,
                                 int64_t batch_size = 8);

// The whole of `hps eval`: read the files, score with the models when given, evaluate, write results.json,
// report.md and rewards.svg. Under torchrun every rank scores its share; rank 0 evaluates and writes (the
// others return empty results).
eval::EvalResults run_eval(const eval::EvalJob& job, const EvalModels& models, std::ostream& log);

}  // namespace hps::pipeline

#include "pipeline/eval_stage.hpp"

#include "model/load.hpp"
#include "model/lora.hpp"
#include "model/score_records.hpp"
#include "text/text_setup.hpp"

namespace hps::pipeline {

eval::ModelScores score_requests(const EvalModels& m, const eval::ModelRequests& req, int64_t batch_size) {
  const model::LoadOptions lo{at::Device(m.device), std::nullopt};
  const model::Decoder policy = model::load_policy(m.policy, m.adapter, lo);
  const model::Decoder reference = model::load_model(m.reference, lo);
  auto both = [&](const std::vector<data::TokenizedRecord>& records) {
    if (records.empty()) return eval::PolicyAndReference{};
    return eval::PolicyAndReference{model::score_records(policy, records, batch_size),
                                    model::score_records(reference, records, batch_size)};
  };
  return {both(req.worst), both(req.hardest), both(req.winners)};
}

eval::EvalResults run_eval(const eval::EvalJob& job, const EvalModels& models, std::ostream& log) {
  const eval::EvalData data = eval::read_eval_data(job);
  std::optional<eval::ModelScores> scores;
  if (data.test && !models.policy.empty() && !models.reference.empty()) {
    const auto [tok, chat] = text::load_text_setup(models.tokenizer.empty() ? models.policy : models.tokenizer,
                                                   models.chat_format);
    const eval::ModelRequests req = eval::model_requests(data, eval::eval_encoder(tok, chat, job.max_prompt_length));
    scores = score_requests(models, req);
  }
  eval::EvalResults res = eval::evaluate(job, data, scores ? &*scores : nullptr, log);
  eval::write_eval(job, data, res, log);
  return res;
}

}  // namespace hps::pipeline

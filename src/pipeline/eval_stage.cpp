#include "pipeline/eval_stage.hpp"

#include "dist/world.hpp"
#include "model/load.hpp"
#include "model/lora.hpp"
#include "model/score_records.hpp"
#include "text/text_setup.hpp"

namespace hps::pipeline {

eval::ModelScores score_requests(const EvalModels& m, const eval::ModelRequests& req, const dist::World& world,
                                 int64_t batch_size) {
  const model::LoadOptions lo{dist::local_device(m.device), std::nullopt};
  const model::Decoder policy = model::load_policy(m.policy, m.adapter, lo);
  const model::Decoder reference = model::load_model(m.reference, lo);
  auto both = [&](const std::vector<data::TokenizedRecord>& records) {
    if (records.empty()) return eval::PolicyAndReference{};
    auto p = model::score_records_sharded(policy, records, batch_size, model::Layout::packed, world);
    return eval::PolicyAndReference{std::move(p),
                                    model::score_records_sharded(reference, records, batch_size, model::Layout::packed, world)};
  };
  return {both(req.worst), both(req.hardest), both(req.winners)};
}

eval::EvalResults run_eval(const eval::EvalJob& job, const EvalModels& models, std::ostream& log) {
  const eval::EvalData data = eval::read_eval_data(job);
  std::optional<eval::ModelScores> scores;
  if (data.test && !models.policy.empty() && !models.reference.empty()) {
    const auto [tok, chat, warning] = text::load_text_setup(models.tokenizer.empty() ? models.policy : models.tokenizer,
                                                            models.chat_format);
    if (!warning.empty()) log << warning << "\n";
    const eval::ModelRequests req = eval::model_requests(data, eval::eval_encoder(tok, chat, job.max_prompt_length));
    scores = score_requests(models, req, dist::world());  // under torchrun: each rank a share
  }
  if (!dist::world().is_main()) return {};  // on numbers: rank 0 evaluates and writes
  eval::EvalResults res = eval::evaluate(job, data, scores ? &*scores : nullptr, log);
  eval::write_eval(job, data, res, log);
  return res;
}

}  // namespace hps::pipeline

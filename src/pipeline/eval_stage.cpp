#include "pipeline/eval_stage.hpp"

#include <nlohmann/json.hpp>

#include "dist/world.hpp"
#include "model/load.hpp"
#include "model/lora.hpp"
#include "model/score_records.hpp"
#include "text/text_setup.hpp"

namespace hps::pipeline {

namespace {

// Every rank's scores of its share, in rank order (= record order) on every rank.
std::vector<model::RecordLogprobs> gather_scores(const std::vector<model::RecordLogprobs>& mine, const dist::World& world) {
  if (!world.distributed()) return mine;
  nlohmann::json j = nlohmann::json::array();
  for (const auto& r : mine) j.push_back({r.logp, r.tokens});
  std::vector<model::RecordLogprobs> all;
  for (const std::string& part : world.gather(j.dump()))
    for (const auto& r : nlohmann::json::parse(part))
      all.push_back({r.at(0).get<std::vector<double>>(), r.at(1).get<std::vector<int64_t>>()});
  return all;
}

}  // namespace

eval::ModelScores score_requests(const EvalModels& m, const eval::ModelRequests& req, const dist::World& world,
                                 int64_t batch_size) {
  const model::LoadOptions lo{dist::local_device(m.device), std::nullopt};
  const model::Decoder policy = model::load_policy(m.policy, m.adapter, lo);
  const model::Decoder reference = model::load_model(m.reference, lo);
  auto both = [&](const std::vector<data::TokenizedRecord>& records) {
    if (records.empty()) return eval::PolicyAndReference{};
    const auto n = static_cast<int64_t>(records.size()), r = world.rank(), S = world.size();
    const std::vector<data::TokenizedRecord> mine(records.begin() + r * n / S, records.begin() + (r + 1) * n / S);
    auto score = [&](const model::Decoder& d) {
      return gather_scores(mine.empty() ? std::vector<model::RecordLogprobs>{} : model::score_records(d, mine, batch_size), world);
    };
    auto p = score(policy);
    return eval::PolicyAndReference{std::move(p), score(reference)};
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
    scores = score_requests(models, req, dist::world());  // under torchrun: each rank a share
  }
  if (!dist::world().is_main()) return {};  // on numbers: rank 0 evaluates and writes
  eval::EvalResults res = eval::evaluate(job, data, scores ? &*scores : nullptr, log);
  eval::write_eval(job, data, res, log);
  return res;
}

}  // namespace hps::pipeline

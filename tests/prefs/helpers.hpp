// Shared helpers of the prefs tests: fixture loading and config construction.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "prefs/losses.hpp"

namespace hps::test {

inline const nlohmann::json& loss_fixtures() {
  static const nlohmann::json j = [] {
    const char* dir = std::getenv("HPS_FIXTURES_DIR");  // ctest sets it; by hand: HPS_FIXTURES_DIR=tests/fixtures
    const std::string path = std::string(dir ? dir : "tests/fixtures") + "/losses.json";
    std::ifstream f(path);
    if (!f) throw std::runtime_error("cannot open " + path + " (set HPS_FIXTURES_DIR)");
    return nlohmann::json::parse(f);
  }();
  return j;
}

inline at::Tensor to_tensor(const nlohmann::json& rows, at::ScalarType dtype) {
  std::vector<double> flat;
  int64_t B = rows.size(), K = rows[0].size();
  for (const auto& r : rows)
    for (const auto& v : r) flat.push_back(v.is_boolean() ? (v.get<bool>() ? 1.0 : 0.0) : v.get<double>());
  return at::tensor(flat, at::TensorOptions().dtype(at::kDouble)).reshape({B, K}).to(dtype);
}

inline prefs::PrefBatch batch_from(const nlohmann::json& set, at::ScalarType dtype = at::kDouble) {
  return {to_tensor(set["policy_logp"], dtype), to_tensor(set["ref_logp"], dtype), to_tensor(set["length"], dtype),
          to_tensor(set["reward"], dtype), to_tensor(set["valid"], at::kBool), {}};
}

inline prefs::LossConfig config_from(const nlohmann::json& j) {
  prefs::LossConfig c;
  c.objective = prefs::parse_objective(j["objective"].get<std::string>());
  c.preference = prefs::parse_preference(j["preference"].get<std::string>());
  c.pair_rule = prefs::parse_pair_rule(j["pair_rule"].get<std::string>());
  c.n_factor = prefs::parse_n_factor(j["n_factor"].get<std::string>());
  c.beta = j["beta"];
  c.gamma = j["gamma"];
  c.label_smoothing = j["label_smoothing"];
  c.robust = j["robust"];
  c.exo_epsilon = j["exo_epsilon"];
  c.simpo_margin = j["simpo_margin"];
  c.rdpo_alpha = j["rdpo_alpha"];
  c.multi_preferred = j["multi_preferred"];
  c.multi_lambda = j["multi_lambda"];
  c.ties = prefs::parse_ties(j.value("ties", std::string("exclude")));
  return c;
}

inline std::string describe(const prefs::LossConfig& c);

// Calls f(batch set, config, case) for every fixture case, with a trace naming the cell.
template <typename F>
void for_each_fixture_case(F&& f) {
  const auto& fx = loss_fixtures();
  ASSERT_GE(fx["cases"].size(), 100u);
  for (const auto& cs : fx["cases"]) {
    const auto& set = fx["sets"][cs["set"].get<std::string>()];
    prefs::LossConfig c = config_from(cs["config"]);
    SCOPED_TRACE(describe(c) + " on set " + cs["set"].get<std::string>());
    f(set, c, cs);
  }
}

inline std::string describe(const prefs::LossConfig& c) {
  std::string s = std::string(prefs::to_string(c.objective)) + "/" + std::string(prefs::to_string(c.preference));
  if (c.preference == prefs::Preference::bt) s += "/" + std::string(prefs::to_string(c.pair_rule));
  if (c.label_smoothing > 0) s += c.robust ? "/robust" : "/cdpo";
  if (c.n_factor == prefs::NFactor::one) s += "/n_one";
  if (c.multi_preferred) s += "/multi";
  if (c.ties == prefs::Ties::by_slot) s += "/by_slot";
  return s + " gamma=" + std::to_string(c.gamma);
}

// Every cell of the grid with fresh defaults: objectives × {bt rules, pl, hps, hps_full}.
inline std::vector<prefs::LossConfig> all_cells() {
  std::vector<prefs::LossConfig> out;
  for (auto o : {prefs::Objective::dpo, prefs::Objective::ipo, prefs::Objective::exo, prefs::Objective::sppo,
                 prefs::Objective::nca, prefs::Objective::simpo, prefs::Objective::rdpo}) {
    for (auto r : {prefs::PairRule::max_min, prefs::PairRule::max_random, prefs::PairRule::max_max,
                   prefs::PairRule::random}) {
      prefs::LossConfig c;
      c.objective = o;
      c.preference = prefs::Preference::bt;
      c.pair_rule = r;
      out.push_back(c);
    }
    for (auto p : {prefs::Preference::pl, prefs::Preference::hps, prefs::Preference::hps_full}) {
      prefs::LossConfig c;
      c.objective = o;
      c.preference = p;
      c.gamma = 1.3;
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace hps::test

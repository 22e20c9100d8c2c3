// Reports over `hps eval` results: the Table-2-style markdown table (one row per method; columns for the
// metrics the results hold — oracle reward and harmful rate when an oracle scored the generations, training
// cost when the pipeline recorded it), the plots, and the aggregate over several seeds (mean ± sd).
#pragma once

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "eval/results.hpp"

namespace hps::eval {

using NamedDir = std::pair<std::string, std::string>;  // method name, folder holding its results.json

// The markdown table, one row per result (named by EvalResults::name): a column for each metric at least one
// of them has.
std::string results_table(const std::vector<EvalResults>& rows);

// Combines several `hps eval` result folders into one report: report.md (one row per method),
// rewards.svg (their reward distributions overlaid), margins.svg (RM_DPO / RM_R-DPO per method) and, when
// the results hold oracle rewards, oracle.svg (their r* distributions).
void combine_reports(const std::vector<NamedDir>& runs, const std::string& out, std::ostream& log);

// The same methods evaluated under several seeds (one list of runs per seed, methods in the same order):
// report.md with mean ± sd over seeds of every column plus each seed's own table, margins.svg and
// oracle.svg of the means / pooled samples.
void aggregate_seed_reports(const std::vector<std::pair<std::string, std::vector<NamedDir>>>& seeds,
                            const std::string& out, std::ostream& log);

// A bar chart of named values per method, e.g. margins (exposed for tests).
std::string bar_chart_svg(const std::string& title, const std::vector<std::string>& methods,
                          const std::vector<std::pair<std::string, std::vector<double>>>& groups);

// A self-contained SVG: overlaid histograms of values per method (exposed for tests).
std::string reward_histogram_svg(const std::vector<std::pair<std::string, std::vector<double>>>& series,
                                 const std::string& title = "Reward of generated responses (share per bin)");

}  // namespace hps::eval

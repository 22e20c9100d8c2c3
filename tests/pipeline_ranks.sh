#!/usr/bin/env bash
# hps pipeline under a 2-process group: every stage runs on both ranks (training data-parallel, generation and
# scoring sharded, evaluation and the records on rank 0) and ends DONE with a report; rank 1 prints nothing
# but its own lines; no shard parts are left behind; a rerun skips every stage on both ranks.
# Usage: pipeline_ranks.sh HPS FIXTURES
set -euo pipefail
HPS=$1 FIX=$2
source "$(dirname "$0")/two_ranks.sh"      # $W, fail, two_ranks
source "$(dirname "$0")/tiny_pipeline.sh"  # tiny_pipeline
tiny_pipeline
STAGES=(sft generate reward annotate train_bt train_pl train_hps eval_sft eval_bt eval_pl eval_hps)
two_ranks pipeline --config "$W/p.toml"
for s in "${STAGES[@]}"; do
  [[ -e $W/run/$s/DONE ]] || fail "stage $s has no DONE record"
  grep -qE "^== $s finished in [0-9.]+ s$" "$W/rank0.log" || fail "rank 0 did not report stage $s"
done
[[ -s $W/run/report/report.md ]] || fail "no report"
grep -q "| hps |" "$W/run/report/report.md" || fail "the report has no hps row"
[[ -z $(find "$W/run" -name '*.part-*') ]] || fail "shard parts left: $(find "$W/run" -name '*.part-*')"
[[ ! -s $W/rank1.log ]] || fail "rank 1 printed: $(head -3 "$W/rank1.log")"
echo "pipeline on 2 ranks: ${#STAGES[@]} stages DONE, report written"
two_ranks pipeline --config "$W/p.toml"
for s in "${STAGES[@]}"; do
  grep -qx "== $s: done earlier, skipped" "$W/rank0.log" || fail "the rerun did not skip $s: $(cat "$W/rank0.log")"
done
echo "pipeline rerun on 2 ranks: every stage skipped"

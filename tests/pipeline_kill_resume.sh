#!/usr/bin/env bash
# A pipeline stage killed mid-run resumes inside the stage on rerun, from its newest complete checkpoint:
#   run 1 stops train_bt after 3 steps (train.stop_after: a complete checkpoint-3, the stage not DONE) and says so;
#   run 2 resumes it and is SIGKILLed inside its next save (held there by HPS_TEST_PAUSE_IN_SAVE, so the kill
#         lands at a known point: checkpoint-4's files written, not yet renamed or marked complete);
#   run 3 resumes from checkpoint-3 again (the interrupted save ignored) and finishes every stage.
# No fixed sleeps: bounded polls that fail the test. Usage: pipeline_kill_resume.sh HPS FIXTURES
set -euo pipefail
HPS=$1 FIX=$2
DEADLINE=$((SECONDS + 600))  # the whole test; exceeding it fails
W=$(mktemp -d)
pid=                         # the run in flight, killed when the test ends early
cleanup() {
  [[ -z $pid ]] || kill -9 "$pid" 2> /dev/null
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
source "$(dirname "$0")/tiny_pipeline.sh"
tiny_pipeline
# One method, a checkpoint every step.
TRAIN=(--config "$W/p.toml" --train.methods=bt --train.max_steps=12 --train.batch_prompts=2 --train.save_every=1)
RUN=$W/run/train_bt/run
ck() { printf '%s/checkpoint-%08d' "$RUN" "$1"; }

# Run 1: stopped inside train_bt after step 3, with checkpoint 3 complete; the stage is not marked DONE.
rc=0
"$HPS" pipeline "${TRAIN[@]}" --train.stop_after=3 > "$W/run1.log" 2>&1 || rc=$?
((rc == 1)) || fail "run 1 exited with $rc, expected 1 (stopped before the last step): $(cat "$W/run1.log")"
grep -qF "train_bt stopped before its last step (12) at train.stop_after, saved in $(ck 3): rerun to continue" "$W/run1.log" ||
  fail "run 1 does not say where it stopped: $(tail -3 "$W/run1.log")"
[[ -e $(ck 3)/COMPLETE && ! -e $W/run/train_bt/DONE ]] || fail "after run 1: no complete checkpoint-3, or train_bt marked DONE"

# Run 2: resumes train_bt and is killed inside its first save (checkpoint 4).
HPS_TEST_PAUSE_IN_SAVE="$W/paused" "$HPS" pipeline "${TRAIN[@]}" > "$W/run2.log" 2>&1 &
pid=$!
until [[ -e $W/paused ]]; do
  kill -0 "$pid" 2> /dev/null || fail "run 2 ended before pausing in a save: $(cat "$W/run2.log")"
  ((SECONDS < DEADLINE)) || fail "timed out waiting for run 2 to pause in a save"
  sleep 0.05
done
[[ $(cat "$W/paused") == "$(ck 4).tmp" ]] || fail "run 2 paused in $(cat "$W/paused"), expected $(ck 4).tmp"
kill -9 "$pid"
rc=0
wait "$pid" || rc=$?
pid=
((rc == 137)) || fail "run 2 exited with $rc before the kill (expected 137: killed by SIGKILL)"
grep -qxF "== train_bt (resuming the interrupted run)" "$W/run2.log" || fail "run 2 did not resume train_bt: $(cat "$W/run2.log")"
grep -qxF "resumed from $(ck 3) at step 3/12" "$W/run/log.txt" || fail "run 2 did not resume from checkpoint 3"
for s in sft generate reward annotate; do
  grep -qxF "== $s: done earlier, skipped" "$W/run2.log" || fail "run 2 did not skip $s"
done
[[ ! -e $(ck 4)/COMPLETE && ! -e $W/run/train_bt/DONE ]] || fail "the killed save completed checkpoint 4 or the stage"
echo "run 2 resumed train_bt from checkpoint 3 and was killed inside the save of checkpoint 4"

# Run 3: resumes from checkpoint 3 again and finishes the pipeline.
"$HPS" pipeline "${TRAIN[@]}" > "$W/run3.log" 2>&1 || fail "run 3 failed: $(cat "$W/run3.log")"
[[ $(grep -c "^resumed from $(ck 3) at step 3/12$" "$W/run/log.txt") == 2 ]] || fail "run 3 did not resume from checkpoint 3"
grep -qE "^== train_bt finished in [0-9.]+ s$" "$W/run3.log" || fail "train_bt did not finish in run 3"
[[ -e $(ck 12)/COMPLETE && -e $W/run/train_bt/DONE && -s $W/run/report/report.md ]] || fail "run 3 did not complete"
echo "pipeline resumed inside a killed stage"

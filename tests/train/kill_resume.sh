#!/usr/bin/env bash
# Resume exactness under SIGKILL: a run killed (a) right after a checkpoint is complete (held there by the
# HPS_TEST_PAUSE_AFTER_SAVE hook of train/run_checkpoint.cpp) and (b) inside a checkpoint write (held there by
# HPS_TEST_PAUSE_IN_SAVE), then resumed, must say where it resumed and end with exactly the weights of an
# uninterrupted run. The hooks make every kill land at its point whatever the machine's load: a run cannot
# finish before the kill.
# Usage: kill_resume.sh HPS FIXTURES
set -euo pipefail
HPS=$1 FIX=$2
W=$(mktemp -d)
pid=
trap 'if [[ -n $pid ]]; then kill -9 "$pid" 2> /dev/null; fi; rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
DEADLINE=$((SECONDS + 900))  # the whole test; exceeding it fails
# Waits until FILE exists. Fails if the run $pid ends first or the deadline passes.
wait_for() {
  until [[ -e $1 ]]; do
    kill -0 "$pid" 2> /dev/null || fail "the run ended before $1 appeared"
    ((SECONDS < DEADLINE)) || fail "timed out waiting for $1"
    sleep 0.01
  done
}
# SIGKILLs the run $pid and checks that the kill, not the end of training, ended it.
kill_run() {
  kill -9 "$pid"
  local rc=0
  wait "$pid" || rc=$?
  pid=
  ((rc == 137)) || fail "the run exited with $rc before the kill (expected 137: killed by SIGKILL)"
}
# The step of the newest checkpoint with its COMPLETE marker.
latest_complete() {
  local last
  last=$(ls -d "$W"/killed/checkpoint-*[0-9]/COMPLETE | tail -1)
  last=${last%/COMPLETE}
  echo $((10#${last##*checkpoint-}))
}
# Checks that LOG says the run resumed from checkpoint STEP.
expect_resumed() {
  local log=$1 step=$2 dir
  dir=$(printf '%s/killed/checkpoint-%08d' "$W" "$step")
  grep -qxF "resumed from $dir at step $step/40" "$log" ||
    fail "$log does not say 'resumed from $dir at step $step/40'; it says: $(grep -E 'resumed from|starting fresh' "$log")"
  grep -E "resumed from" "$log"
}

"$HPS" model init --config-json "$FIX/train/tiny_qwen2_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 \
  --seed 3 --out "$W/model" > /dev/null
ARGS=(--model.path="$W/model" --data.path="$FIX/data/ranked_sample.jsonl" --data.on_bad_record=skip
      --train.max_steps=40 --train.batch_prompts=2 --train.lr=0.01 --train.save_every=1 --train.keep_last=2
      --loss.preference=hps --lora.dropout=0.1)
KILLED=("${ARGS[@]}" --train.out_dir="$W/killed")
"$HPS" train "${ARGS[@]}" --train.out_dir="$W/straight" > /dev/null

# (a) A fresh run, killed once checkpoint 3 is complete.
HPS_TEST_PAUSE_AFTER_SAVE="3:$W/paused_a" "$HPS" train "${KILLED[@]}" --resume > "$W/run1.log" 2>&1 &
pid=$!
wait_for "$W/paused_a"
[[ -e $W/killed/checkpoint-00000003/COMPLETE ]] || fail "paused after save 3 without its COMPLETE marker"
kill_run
grep -q "no complete checkpoint in $W/killed: starting fresh" "$W/run1.log" || fail "run 1 did not start fresh"
k=$(latest_complete)
((k == 3)) || fail "newest complete checkpoint after kill (a) is $k, expected 3"
echo "kill (a): run 1 killed with checkpoint $k complete"

# (b) A resumed run, killed inside its first save (checkpoint k+1: files in the .tmp folder, not renamed).
HPS_TEST_PAUSE_IN_SAVE="$W/paused" "$HPS" train "${KILLED[@]}" --resume > "$W/run2.log" 2>&1 &
pid=$!
wait_for "$W/paused"
tmp=$(printf '%s/killed/checkpoint-%08d.tmp' "$W" $((k + 1)))
[[ $(cat "$W/paused") == "$tmp" ]] || fail "paused in $(cat "$W/paused"), expected $tmp"
[[ -s $tmp/optimizer.safetensors && -s $tmp/adapter/adapter_model.safetensors ]] || fail "$tmp lacks its files"
kill_run
echo "kill (b): run 2 killed inside the save of checkpoint $((k + 1))"
expect_resumed "$W/run2.log" "$k"
[[ -d $tmp && ! -e ${tmp%.tmp} ]] || fail "the killed save left no $tmp (or renamed it)"
((k == $(latest_complete))) || fail "the killed save changed the newest complete checkpoint"

# (a) again, on a resumed run: it starts from checkpoint k (the interrupted save ignored); killed after k+3.
HPS_TEST_PAUSE_AFTER_SAVE="$((k + 3)):$W/paused_c" "$HPS" train "${KILLED[@]}" --resume > "$W/run3.log" 2>&1 &
pid=$!
wait_for "$W/paused_c"
kill_run
expect_resumed "$W/run3.log" "$k"
k2=$(latest_complete)
((k2 == k + 3)) || fail "newest complete checkpoint after the second kill (a) is $k2, expected $((k + 3))"
echo "kill (a): run 3 killed with checkpoint $k2 complete"

# The last resume runs to the end.
"$HPS" train "${KILLED[@]}" --resume > "$W/resume.log"
expect_resumed "$W/resume.log" "$k2"
last=$(ls -d "$W"/straight/checkpoint-* | tail -1 | xargs basename)
[[ $last == checkpoint-00000040 ]] || fail "the straight run's last checkpoint is $last"
cmp "$W/straight/$last/adapter/adapter_model.safetensors" "$W/killed/$last/adapter/adapter_model.safetensors"
cmp "$W/straight/$last/optimizer.safetensors" "$W/killed/$last/optimizer.safetensors"
echo "resume after SIGKILL: identical adapter and optimizer state at $last"

#!/usr/bin/env bash
# Ctrl-C (SIGINT) during `hps train`: the run saves a checkpoint after the current step and exits 0; --resume
# continues from it. Both runs also show the CPU thread settings (core/threads.hpp): without OMP_WAIT_POLICY
# hps re-executes itself with PASSIVE (same pid, so the signal still reaches the run); a user's value and
# --threads are kept. Usage: sigint_saves.sh HPS FIXTURES
set -euo pipefail
HPS=$1 FIX=$2
W=$(mktemp -d)
pid=
trap 'if [[ -n $pid ]]; then kill -9 "$pid" 2> /dev/null; fi; rm -rf "$W"' EXIT
"$HPS" model init --config-json "$FIX/train/tiny_qwen2_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 \
  --out "$W/model" > /dev/null
ARGS=(--model.path="$W/model" --data.path="$FIX/data/ranked_sample.jsonl" --data.on_bad_record=skip
      --train.max_steps=100000 --train.batch_prompts=2 --train.lr=0.001 --train.out_dir="$W/run")
fail() { echo "FAIL: $*" >&2; exit 1; }
env -u OMP_WAIT_POLICY HPS_THREADS=2 "$HPS" train "${ARGS[@]}" > "$W/log" 2>&1 &
pid=$!
# SIGINT once the first step is logged (the handler is in place by then); waiting too long fails the test.
deadline=$((SECONDS + 300))
until grep -q "^step " "$W/log"; do
  kill -0 "$pid" 2> /dev/null || fail "the run ended before its first step: $(cat "$W/log")"
  ((SECONDS < deadline)) || { kill -9 "$pid"; fail "no step logged within 300 s"; }
  sleep 0.05
done
kill -INT "$pid"
wait "$pid" || fail "the interrupted run exited with $?, expected 0: $(tail -3 "$W/log")"
pid=
n=$(sed -n 's/^stopped at step \([0-9]*\) (resume with --resume)$/\1/p' "$W/log")
[[ -n $n ]] || fail "no 'stopped at step N' line: $(tail -3 "$W/log")"
grep "stopped at step" "$W/log"
ckpt=$(printf '%s/run/checkpoint-%08d' "$W" "$n")
[[ -f $ckpt/COMPLETE ]] || fail "no complete $ckpt after SIGINT at step $n"
grep -q "CPU threads 2 (OMP_WAIT_POLICY PASSIVE)" "$W/log" || fail "no passive wait policy: $(head -3 "$W/log")"
OMP_WAIT_POLICY=ACTIVE "$HPS" --threads 1 train "${ARGS[@]}" --train.max_steps=100000 --train.stop_after=1 --resume > "$W/resume.log"
grep -q "CPU threads 1 (OMP_WAIT_POLICY ACTIVE)" "$W/resume.log" || fail "--threads / OMP_WAIT_POLICY not kept: $(head -3 "$W/resume.log")"
grep -xF "resumed from $ckpt at step $n/100000" "$W/resume.log" ||
  fail "the resume did not start from $ckpt: $(grep -E 'resumed from|starting fresh' "$W/resume.log")"
echo "SIGINT saved a checkpoint and the run resumed from it"

#!/usr/bin/env bash
# Ctrl-C (SIGINT) during `hps train`: the run saves a checkpoint after the current step and exits 0; --resume
# continues from it. Usage: sigint_saves.sh HPS FIXTURES
set -euo pipefail
HPS=$1 FIX=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$HPS" model init --config-json "$FIX/train/tiny_qwen2_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 \
  --out "$W/model" > /dev/null
ARGS=(--model.path="$W/model" --data.path="$FIX/data/ranked_sample.jsonl" --data.on_bad_record=skip
      --train.max_steps=100000 --train.batch_prompts=2 --train.lr=0.001 --train.out_dir="$W/run")
"$HPS" train "${ARGS[@]}" > "$W/log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "^step " "$W/log" && break; sleep 0.1; done
kill -INT "$pid"
wait "$pid"
grep "stopped at step" "$W/log"
ls -d "$W"/run/checkpoint-* > /dev/null
"$HPS" train "${ARGS[@]}" --train.max_steps=100000 --train.stop_after=1 --resume | grep "resumed from"
echo "SIGINT saved a checkpoint and the run resumed from it"

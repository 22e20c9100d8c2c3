#!/usr/bin/env bash
# Resume exactness under SIGKILL: a run killed at an arbitrary moment (mid-step or mid-checkpoint-write)
# and resumed must end with exactly the weights of an uninterrupted run. Usage: kill_resume.sh HPS FIXTURES
set -euo pipefail
HPS=$1 FIX=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$HPS" model init --config-json "$FIX/train/tiny_qwen2_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 \
  --seed 3 --out "$W/model" > /dev/null
ARGS=(--model.path="$W/model" --data.path="$FIX/data/ranked_sample.jsonl" --data.on_bad_record=skip
      --train.max_steps=40 --train.batch_prompts=2 --train.lr=0.01 --train.save_every=1 --train.keep_last=2
      --loss.preference=hps --lora.dropout=0.1)
"$HPS" train "${ARGS[@]}" --train.out_dir="$W/straight" > /dev/null
# Kill at several points: wherever each lands, resuming must reproduce the straight run.
for delay in 0.15 0.3 0.45; do
  "$HPS" train "${ARGS[@]}" --train.out_dir="$W/killed" --resume > /dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
done
"$HPS" train "${ARGS[@]}" --train.out_dir="$W/killed" --resume > "$W/resume.log"
grep -E "resumed from|starting fresh" "$W/resume.log" || true
last=$(ls -d "$W"/straight/checkpoint-* | tail -1 | xargs basename)
cmp "$W/straight/$last/adapter/adapter_model.safetensors" "$W/killed/$last/adapter/adapter_model.safetensors"
cmp "$W/straight/$last/optimizer.safetensors" "$W/killed/$last/optimizer.safetensors"
echo "resume after SIGKILL: identical adapter and optimizer state at $last"

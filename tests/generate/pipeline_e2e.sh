#!/usr/bin/env bash
# generate → score → eval end to end on tiny models: a random policy, a reference, and a reward model trained
# by hps train-rm on the test set. Usage: pipeline_e2e.sh HPS FIXTURES
set -euo pipefail
HPS=$1 FIX=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for s in 1 2; do
  "$HPS" model init --config-json "$FIX/train/tiny_qwen2_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 \
    --seed $s --out "$W/m$s" > /dev/null
done
DATA="$FIX/data/ranked_sample.jsonl"
"$HPS" train-rm --model.path="$W/m1" --data.path="$DATA" --data.on_bad_record=skip --train.max_steps=5 \
  --train.batch_prompts=3 --train.lr=0.01 --train.out_dir="$W/rm" > /dev/null
RM=$(ls -d "$W"/rm/checkpoint-* | tail -1)/model
for s in 1 2; do
  head -3 "$DATA" > "$W/prompts.jsonl"
  "$HPS" generate --model "$W/m$s" --data "$W/prompts.jsonl" --out "$W/gen$s.jsonl" --n 4 --max-new-tokens 12 \
    --temperature 0.9 --seed $s 2> /dev/null
  "$HPS" score --model "$RM" --data "$W/gen$s.jsonl" --out "$W/gen$s.jsonl" 2> /dev/null
done
"$HPS" eval --generations "$W/gen1.jsonl" --baseline "$W/gen2.jsonl" --test "$W/prompts.jsonl" --policy "$W/m1" \
  --reference "$W/m2" --name tiny-1 --baseline-name tiny-2 --out "$W/eval"
test -s "$W/eval/results.json" && test -s "$W/eval/report.md" && grep -q "<svg" "$W/eval/rewards.svg"
python3 -c "import json,sys; r=json.load(open('$W/eval/results.json')); assert all(k in r for k in ('reward','bleu','win_rate','margins','kl_winning')), r.keys()" 2>/dev/null \
  || grep -q '"kl_winning"' "$W/eval/results.json"
echo "pipeline generate -> score -> eval complete"

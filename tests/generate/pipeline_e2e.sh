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
fail() { echo "FAIL: $*" >&2; exit 1; }
test -s "$W/eval/results.json" && test -s "$W/eval/report.md" && grep -q "<svg" "$W/eval/rewards.svg"
# Each generation file: one line per prompt, each with 4 responses and 4 rewards (numbers) from score.
num='-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?'
for s in 1 2; do
  [[ $(wc -l < "$W/gen$s.jsonl") -eq 3 ]] || fail "gen$s.jsonl has $(wc -l < "$W/gen$s.jsonl") lines, expected 3"
  if grep -Evq "\"rewards\":\\[$num(,$num){3}\\]" "$W/gen$s.jsonl"; then
    fail "gen$s.jsonl: a line without exactly 4 numeric rewards: $(grep -Ev "\"rewards\":\\[$num(,$num){3}\\]" "$W/gen$s.jsonl" | head -1)"
  fi
done
# results.json is written by nlohmann::json dump(2): top-level keys are indented 2 spaces, their fields 4.
# Flattened to "section.field=value" lines for the checks below (no JSON tool needed).
awk '/^  "[^"]+": / { match($0, /"[^"]+"/); top = substr($0, RSTART + 1, RLENGTH - 2)
                      v = substr($0, RSTART + RLENGTH + 2); sub(/,$/, "", v); print top "=" v; next }
     /^    "[^"]+": / { match($0, /"[^"]+"/); k = substr($0, RSTART + 1, RLENGTH - 2)
                        v = substr($0, RSTART + RLENGTH + 2); sub(/,$/, "", v); print top "." k "=" v }' \
  "$W/eval/results.json" > "$W/flat"
field() { awk -v k="$1" 'index($0, k "=") == 1 { print substr($0, length(k) + 2) }' "$W/flat"; }
expect() { [[ $(field "$1") == "$2" ]] || fail "results.json: $1 is '$(field "$1")', expected '$2'"; }
number() {  # a finite number, optionally within [lo, hi]
  local v
  v=$(field "$1")
  [[ $v =~ ^$num$ ]] || fail "results.json: $1 is '$v', expected a number"
  [[ $# -lt 3 ]] || awk -v v="$v" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }' ||
    fail "results.json: $1 = $v is outside [$2, $3]"
}
expect name '"tiny-1"'
expect reward.prompts 3
expect reward.samples 12
number reward.mean
number reward.top1
expect win_rate.against '"tiny-2"'
expect win_rate.prompts 3
for k in win tie lose; do number "win_rate.$k" 0 1; done
awk -v a="$(field win_rate.win)" -v b="$(field win_rate.tie)" -v c="$(field win_rate.lose)" \
  'BEGIN { d = a + b + c - 1; exit !(d < 1e-9 && d > -1e-9) }' || fail "win_rate: win + tie + lose != 1"
expect bleu.pairs 3
number bleu.nltk_sentence_mean 0 1
number bleu.sacrebleu_corpus 0 100
number margins.rm_dpo
number margins.rm_rdpo
number margins.accuracy 0 1
expect margins.pairs 3
number kl_winning.mean
expect kl_winning.prompts 3
echo "pipeline generate -> score -> eval complete"

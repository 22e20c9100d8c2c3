#!/usr/bin/env bash
# hps pipeline on tiny models: every stage runs, the report is written, and a rerun skips every stage.
# Usage: pipeline_e2e.sh HPS FIXTURES
set -euo pipefail
HPS=$1 FIX=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
source "$(dirname "$0")/tiny_pipeline.sh"
tiny_pipeline
"$HPS" pipeline --config "$W/p.toml" > "$W/log1"
for f in report/report.md report/rewards.svg report/margins.svg eval_hps/results.json annotate/ranked.jsonl; do
  test -s "$W/run/$f" || { echo "missing $f"; exit 1; }
done
grep -q "| hps |" "$W/run/report/report.md"
# The SFT data's bad line 4 is skipped (data.on_bad_record = skip) and reported, never dropped silently.
grep -q "skipped 1 bad records of .*ranked_sample.jsonl" "$W/run/log.txt" || { echo "skip not reported"; exit 1; }
grep -q '"line":4' "$W/run/sft/run/skipped_records.jsonl"
# Learning rates reach the trainer exactly (a fixed-point rendering would turn 5e-7 into 0).
grep -q "lr = [45][.0-9]*e-07" "$W"/run/train_hps/run/checkpoint-*/trainer_state.json || { echo "train.lr lost"; exit 1; }
"$HPS" pipeline "$W/p.toml" > "$W/log2"
[ "$(grep -c 'done earlier, skipped' "$W/log2")" -eq 11 ] || { cat "$W/log2"; exit 1; }
# Without SFT the given policy is the starting point (and the sft row has no training cost); a given reward
# model (here the one the first run trained) scores with the tokenizer and chat format of its own folder.
RM=$(ls -d "$W"/run/reward/run/checkpoint-*/model | tail -n 1)
sed -e 's|^\[sft.data\]|[sft]\nenabled = false\n[sft.data]|' -e "s|dir = \"$W/run\"|dir = \"$W/run-nosft\"|" \
  -e "s|^\[reward.train\]|[reward]\npath = \"$RM\"\nchat_format = \"chatml\"\n[reward.train]|" "$W/p.toml" > "$W/nosft.toml"
"$HPS" pipeline "$W/nosft.toml" > "$W/log3"
grep -q "| hps |" "$W/run-nosft/report/report.md"
echo "pipeline ran every stage, wrote the report, and skipped finished stages on rerun"

#!/usr/bin/env bash
# `hps demo` with two seeds on a miniature task (a few steps each): both seed folders, the aggregate report
# with mean ± sd and its plots. Usage: demo_seeds.sh HPS
set -euo pipefail
HPS=$1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$HPS" demo --run.dir="$W/run" --run.seeds=2 --task.sft_records=64 --task.rm_records=16 --task.train_prompts=16 \
  --task.test_prompts=8 --task.hidden_size=16 --task.intermediate_size=32 --task.layers=1 --sft.steps=3 \
  --reward.steps=2 --train.steps=2 --generate.n=2 --eval.n=2 --generate.max_new_tokens=8 > "$W/log" 2>&1 \
  || { cat "$W/log"; exit 1; }
for f in seed-0/report/report.md seed-1/report/report.md report/report.md report/margins.svg report/oracle.svg; do
  test -s "$W/run/$f" || { echo "missing $f"; cat "$W/log"; exit 1; }
done
grep -q "Mean ± sd over 2 seeds (seed 0, seed 1)" "$W/run/report/report.md"
grep -q "^| hps | .* ± " "$W/run/report/report.md"
grep -q "### seed 1" "$W/run/report/report.md"
test -s "$W/run/log.txt"
echo "two seeds ran and the aggregate report was written"

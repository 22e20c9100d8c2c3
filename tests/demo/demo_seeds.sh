#!/usr/bin/env bash
# `hps demo` with two seeds on a miniature task (a few steps each): both seed folders, the aggregate report
# with mean ± sd and its plots; and `hps train` options given to `hps demo` reach the trainer (γ, the tie rule,
# the checkpoint interval; its checkpoints record them). Usage: demo_seeds.sh HPS
set -euo pipefail
HPS=$1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$HPS" demo --run.dir="$W/run" --run.seeds=2 --task.sft_records=64 --task.rm_records=16 --task.train_prompts=16 \
  --task.test_prompts=8 --task.hidden_size=16 --task.intermediate_size=32 --task.layers=1 --sft.train.max_steps=3 \
  --reward.train.max_steps=2 --train.max_steps=2 --generate.n=2 --eval.n=2 --generate.max_new_tokens=8 \
  --gamma.end=3 --loss.ties=by_slot --train.save_every=1 > "$W/log" 2>&1 \
  || { cat "$W/log"; exit 1; }
for f in seed-0/report/report.md seed-1/report/report.md report/report.md report/margins.svg report/oracle.svg; do
  test -s "$W/run/$f" || { echo "missing $f"; cat "$W/log"; exit 1; }
done
grep -q "Mean ± sd over 2 seeds (seed 0, seed 1)" "$W/run/report/report.md"
grep -q "^| hps | .* ± " "$W/run/report/report.md"
grep -q "### seed 1" "$W/run/report/report.md"
test -s "$W/run/log.txt"
for seed in 0 1; do
  state=$W/run/seed-$seed/train_hps/run/checkpoint-00000002/trainer_state.json
  grep -q '"gamma.end": 3.0' "$state" || { echo "gamma.end did not reach the trainer: $(grep gamma "$state")"; exit 1; }
  grep -q '"loss.ties": "by_slot"' "$state" || { echo "loss.ties did not reach the trainer"; exit 1; }
  # save_every = 1: step 1 was saved too (save_every 0 or the default would save only the last step).
  test -e "$W/run/seed-$seed/train_hps/run/checkpoint-00000001/COMPLETE" || { echo "train.save_every did not reach the trainer"; exit 1; }
done
# γ and the tie rule mean nothing to BT's and PL's losses: a warning per key, not an error.
grep -q "^warning: no effect on this stage: gamma.end: " "$W/log" || { echo "no warning for gamma.end on bt/pl"; cat "$W/log"; exit 1; }
echo "two seeds ran and the aggregate report was written"

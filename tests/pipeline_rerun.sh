#!/usr/bin/env bash
# hps pipeline reruns exactly what changed: unchanged → every stage skipped; one method's setting changed → that
# method's training and evaluation rerun, nothing else; a shared training setting changed → every preference
# stage and its evaluation rerun, SFT / generation / reward model / annotation skipped; each rerun says why.
# Also: relative paths resolve against the config file's folder (the run starts elsewhere, with --config), a
# missing model folder is named, and the settings reach the trainer (its checkpoint records them).
# Usage: pipeline_rerun.sh HPS FIXTURES
set -euo pipefail
HPS=$1 FIX=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
STAGES=(sft generate reward annotate train_bt train_pl train_hps eval_sft eval_bt eval_pl eval_hps)
# Checks that LOG ran exactly the stages listed after it and skipped every other one.
expect_ran() {
  local log=$1 s
  shift
  for s in "${STAGES[@]}"; do
    if [[ " $* " == *" $s "* ]]; then
      grep -qE "^== $s finished in [0-9.]+ s$" "$log" || fail "$s did not run; $log: $(cat "$log")"
    else
      grep -qxF "== $s: done earlier, skipped" "$log" || fail "$s was not skipped; $log: $(cat "$log")"
    fi
  done
}
mkdir -p "$W/cfg" "$W/elsewhere" "$W/data"
"$HPS" model init --config-json "$FIX/train/tiny_qwen2_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 \
  --out "$W/base" > /dev/null
head -3 "$FIX/data/ranked_sample.jsonl" > "$W/data/prompts.jsonl"
cp "$FIX/data/ranked_sample.jsonl" "$W/data/sft.jsonl"
# Every input path relative to the file's folder (cfg/); run.dir is an output, relative to the current directory.
cat > "$W/cfg/p.toml" <<TOML
[run]
dir = "run"
[policy]
path = "../base"
[sft.data]
path = "../data/sft.jsonl"
[sft.train]
max_steps = 2
lr = 0.01
[generate]
prompts = "../data/prompts.jsonl"
n = 3
max_new_tokens = 6
[reward.train]
max_steps = 2
lr = 0.01
[train]
methods = "bt,pl,hps"
max_steps = 2
batch_prompts = 3
[loss]
beta = 0.1
[eval]
prompts = "../data/prompts.jsonl"
n = 2
TOML
cd "$W/elsewhere"
"$HPS" pipeline --config ../cfg/p.toml > "$W/log1" 2>&1 || fail "first run failed: $(cat "$W/log1")"
expect_ran "$W/log1" "${STAGES[@]}"
test -s "$W/elsewhere/run/report/report.md" || fail "no report in the current directory's run/"

"$HPS" pipeline --config ../cfg/p.toml > "$W/log2" 2>&1 || fail "rerun failed: $(cat "$W/log2")"
expect_ran "$W/log2"
echo "unchanged rerun: every stage skipped"

# One method's own setting: only that method's training and evaluation rerun, and γ reaches its trainer.
"$HPS" pipeline --config ../cfg/p.toml --methods.hps.gamma.end=3 > "$W/log3" 2>&1 || fail "run 3 failed: $(cat "$W/log3")"
expect_ran "$W/log3" train_hps eval_hps
grep -qxF "== train_hps: settings changed (gamma.end (unset) → 3), rerunning" "$W/log3" || fail "no reason given: $(cat "$W/log3")"
grep -qxF "== eval_hps: inputs changed (adapter, training), rerunning" "$W/log3" || fail "eval_hps reason: $(cat "$W/log3")"
state=$(ls "$W"/elsewhere/run/train_hps/run/checkpoint-*/trainer_state.json | tail -1)
grep -q '"gamma.end": 3.0' "$state" || fail "gamma.end did not reach the trainer: $(grep gamma "$state")"
echo "one method's setting: train_hps and eval_hps reran"

# A shared training setting: every preference stage and its evaluation rerun; SFT, generation, the reward
# model, annotation and the SFT model's evaluation are kept.
"$HPS" pipeline --config ../cfg/p.toml --methods.hps.gamma.end=3 --loss.beta=0.5 > "$W/log4" 2>&1 || fail "run 4 failed: $(cat "$W/log4")"
expect_ran "$W/log4" train_bt train_pl train_hps eval_bt eval_pl eval_hps
grep -qxF "== train_bt: settings changed (loss.beta 0.1 → 0.5), rerunning" "$W/log4" || fail "no reason given: $(cat "$W/log4")"
grep -q '"loss.beta": 0.5' "$W"/elsewhere/run/train_pl/run/checkpoint-*/trainer_state.json || fail "beta did not reach the trainer"
echo "a shared setting: every preference stage and its evaluation reran"

# A changed input file reruns its stage and everything downstream of it.
head -1 "$FIX/data/ranked_sample.jsonl" >> "$W/data/prompts.jsonl"
"$HPS" pipeline --config ../cfg/p.toml --methods.hps.gamma.end=3 --loss.beta=0.5 > "$W/log5" 2>&1 || fail "run 5 failed: $(cat "$W/log5")"
expect_ran "$W/log5" generate annotate train_bt train_pl train_hps eval_sft eval_bt eval_pl eval_hps
grep -qxF "== generate: inputs changed (prompts), rerunning" "$W/log5" || fail "generate reason: $(cat "$W/log5")"
echo "a changed input file: its stages and everything downstream reran"

# A missing model folder is named, with where relative paths point.
sed 's|path = "../base"|path = "../no-such-model"|' "$W/cfg/p.toml" > "$W/cfg/missing.toml"
rc=0
"$HPS" pipeline --config ../cfg/missing.toml > "$W/log6" 2>&1 || rc=$?
((rc == 1)) || fail "missing model folder: exit $rc; $(cat "$W/log6")"
grep -qF "policy.path: no folder ../cfg/../no-such-model (relative paths in ../cfg/missing.toml resolve against ../cfg)" "$W/log6" ||
  fail "missing model folder not named: $(cat "$W/log6")"
echo "pipeline reran exactly what changed"

#!/usr/bin/env bash
# Data parallelism over c10d (Gloo, 2 processes on loopback) = one process with the same global batch, gradients
# averaged by c10d's Reducer during backward (one bucket, many buckets) or after it (ddp_bucket_cap_mb = 0):
# per-step losses and final parameters within 1e-5, for HPS with LoRA (gradient accumulation, a short last
# batch that leaves rank 0 empty, a prompt whose responses all tie; also in token-budget chunks), PL with full fine-tuning, SFT and a BT
# reward model. Then the same HPS run launched by the real launcher, torchrun --no-python (when given).
# Usage: ddp_equivalence.sh HPS FIXTURES [TORCHRUN]
set -euo pipefail
HPS=$1 FIX=$2 TORCHRUN=${3:-}
source "$(dirname "$0")/../two_ranks.sh"  # $W, fail, two_ranks

"$HPS" model init --config-json "$FIX/train/tiny_qwen2_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 \
  --seed 5 --out "$W/model" > /dev/null
# 9 prompts: global batches of 4, 4, 1 (rank 0's part of the last one is empty); prompt 5's responses all tie.
for i in 1 2 3 4 5 6 7 8 9; do
  if ((i == 5)); then rewards="[1, 1, 1]"; else rewards="[$i, $((i % 3)).5, -$i]"; fi
  echo "{\"prompt\": \"Question $i: name a colour.\", \"responses\": [\"Red $i.\", \"Blue, maybe $i.\", \"Banana\"], \"rewards\": $rewards}"
done > "$W/data.jsonl"
COMMON=(--model.path="$W/model" --data.path="$W/data.jsonl" --train.lr=0.01 --train.seed=3)

# The per-step losses of a run's metrics.jsonl, one per line.
losses() { grep -o '"loss":[^,]*' "$1/metrics.jsonl" | cut -d: -f2; }


# Each step's "lines" and "responses" of a run's metrics.jsonl.
rows() { sed -E 's/.*("lines":\[[^]]*\]).*("responses":\[[][0-9,-]*\]).*/\1 \2/' "$1/metrics.jsonl"; }

# Compares run ONE (1 process) with run TWO (2 ranks): losses step by step and the saved weights FILE.
same() {
  local one=$1 two=$2 file=$3 n
  n=$(losses "$one" | wc -l)
  ((n > 0 && n == $(losses "$two" | wc -l))) || fail "$two has $(losses "$two" | wc -l) steps, $one $n"
  paste <(losses "$one") <(losses "$two") |
    awk -v what="$two" '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5) { print "FAIL: " what " step " NR " loss " $2 " vs " $1 > "/dev/stderr"; bad = 1 } } END { exit bad }' ||
    exit 1
  # The prompts and forwarded responses of every step, in the global batch's order.
  diff <(rows "$one") <(rows "$two") > /dev/null ||
    fail "$two: the steps' lines / responses differ from $one's"
  "$HPS" model diff "$one/$file" "$two/$file" --atol 1e-5 > "$W/diff.txt" || { cat "$W/diff.txt" >&2; fail "$two: weights differ from $one"; }
  echo "$two: $n steps, losses and weights within 1e-5 ($(tail -1 "$W/diff.txt"))"
}

last() { ls -d "$1"/checkpoint-* | tail -1 | xargs basename; }

# HPS × DPO with LoRA, gradient accumulation 2.
HPS_RUN=(train "${COMMON[@]}" --loss.preference=hps --lora.dropout=0 --train.max_steps=4 --train.grad_accum=2)
"$HPS" "${HPS_RUN[@]}" --train.batch_prompts=4 --train.out_dir="$W/hps1" > /dev/null
# torchrun with one process: a 1-rank group whose Reducer all-reduces on one rank (PyTorch DDP's world size 1).
RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$((20000 + RANDOM % 30000)) "$HPS" "${HPS_RUN[@]}" \
  --train.batch_prompts=4 --train.out_dir="$W/hps1g" > "$W/g.log" 2>&1 || { cat "$W/g.log" >&2; fail "WORLD_SIZE=1 failed"; }
grep -q "gradient all-reduce: 1 bucket of <= 25 MiB, overlapped with backward by c10d's Reducer over gloo" "$W/g.log" ||
  fail "WORLD_SIZE=1 ran no Reducer: $(grep -o 'gradient all-reduce.*' "$W/g.log")"
same "$W/hps1" "$W/hps1g" "$(last "$W/hps1")/adapter/adapter_model.safetensors"
two_ranks "${HPS_RUN[@]}" --train.batch_prompts=2 --train.out_dir="$W/hps2"
grep -q "data-parallel: 2 processes (rank 0 of 2" "$W/rank0.log" || fail "rank 0 did not describe the group"
# Gradients are averaged by c10d's Reducer while the step's last backward runs (one bucket at the default cap).
grep -q "gradient all-reduce: 1 bucket of <= 25 MiB, overlapped with backward by c10d's Reducer over gloo" "$W/rank0.log" ||
  fail "the Reducer did not run: $(grep -o 'gradient all-reduce.*' "$W/rank0.log")"
[[ ! -s $W/rank1.log ]] || fail "rank 1 printed: $(head -3 "$W/rank1.log")"
same "$W/hps1" "$W/hps2" "$(last "$W/hps1")/adapter/adapter_model.safetensors"
# train.ref_cache = auto turned the reference cache on (27 responses vs 64 reference forwards): the 2-rank run
# scored it in two shards, merged in record order — the values a single process computes.
grep -q "reference log-prob cache: scored in 2 shards" "$W/rank0.log" || fail "the cache was not built sharded"
"$HPS" model diff "$W/hps1/ref_logps.safetensors" "$W/hps2/ref_logps.safetensors" --atol 1e-6 > "$W/diff.txt" ||
  { cat "$W/diff.txt" >&2; fail "the sharded reference cache differs from one process's"; }
# Buckets of 2 KiB: the Reducer all-reduces many buckets, each as soon as backward filled it.
two_ranks "${HPS_RUN[@]}" --train.batch_prompts=2 --train.ddp_bucket_cap_mb=0.002 --train.out_dir="$W/hps2b"
buckets=$(grep -o "gradient all-reduce: [0-9]* buckets" "$W/rank0.log" | grep -o "[0-9]*")
((${buckets:-0} > 3)) || fail "2 KiB buckets: $(grep -o 'gradient all-reduce.*' "$W/rank0.log")"
same "$W/hps1" "$W/hps2b" "$(last "$W/hps1")/adapter/adapter_model.safetensors"
# The same with token-budget chunks (each backpropagated at once, weighted through one agreement per
# micro-step, which the rank with the empty last batch joins too).
two_ranks "${HPS_RUN[@]}" --train.batch_prompts=2 --train.max_tokens_per_micro_batch=20 --train.out_dir="$W/hps2c"
grep -q '"forward_passes":[3-9]' "$W/hps2c/metrics.jsonl" || fail "the token budget split no micro-batch"
same "$W/hps1" "$W/hps2c" "$(last "$W/hps1")/adapter/adapter_model.safetensors"

# PL with full fine-tuning (a frozen reference on every rank).
# (the reference forward in the steps, not the cache)
# Held-out evaluation after every step on 3 of the 9 prompts, sharded over the ranks: the same numbers.
PL_RUN=(train "${COMMON[@]}" --loss.preference=pl --lora.enabled=false --train.max_steps=3 --train.lr=1e-3
        --train.ref_cache=false --data.eval_fraction=0.34 --train.eval_every=1)
"$HPS" "${PL_RUN[@]}" --train.batch_prompts=4 --train.out_dir="$W/pl1" > "$W/pl1.log"
# Rank 1's parameters are moved before the start-up broadcast (a test hook): rank 0's weights reach every rank.
# 2 KiB buckets over every weight of the model.
HPS_TEST_PERTURB_RANK=1 two_ranks "${PL_RUN[@]}" --train.batch_prompts=2 --train.ddp_bucket_cap_mb=0.002 --train.out_dir="$W/pl2"
grep -q "gradient all-reduce: [0-9]* buckets of <= 0.002 MiB" "$W/rank0.log" || fail "PL: $(grep -o 'gradient all-reduce.*' "$W/rank0.log")"
grep -o "gradient all-reduce: [0-9]* buckets" "$W/rank0.log"
same "$W/pl1" "$W/pl2" "$(last "$W/pl1")/model/model.safetensors"
evals() { grep -o "eval step [0-9]*  loss [^ ]*  acc [^ ]*" "$1" | awk '{ print $5, $7 }'; }
(($(evals "$W/pl1.log" | wc -l) == 4)) || fail "1 process: $(evals "$W/pl1.log" | wc -l) evaluations, expected 4"
paste <(evals "$W/pl1.log") <(evals "$W/rank0.log") | awk '{ for (i = 1; i <= 2; ++i) { d = $i - $(i + 2); if (d < 0) d = -d;
  if (d > 1e-5 || NF != 4) { print "FAIL: evaluation " NR ": " $0 > "/dev/stderr"; bad = 1 } } } END { exit bad }' || exit 1
echo "$W/pl2: 4 sharded evaluations equal one process's"

# SFT (token-level mean over the global batch) and a BT reward model, full fine-tuning.
"$HPS" sft "${COMMON[@]}" --train.max_steps=3 --train.batch_prompts=4 --train.out_dir="$W/sft1" > /dev/null
# (one all-reduce after backward: train.ddp_bucket_cap_mb = 0)
two_ranks sft "${COMMON[@]}" --train.max_steps=3 --train.batch_prompts=2 --train.ddp_bucket_cap_mb=0 --train.out_dir="$W/sft2"
grep -q "gradient all-reduce: after backward" "$W/rank0.log" || fail "SFT: $(grep -o 'gradient all-reduce.*' "$W/rank0.log")"
same "$W/sft1" "$W/sft2" "$(last "$W/sft1")/model/model.safetensors"
# lr 1e-3 as for PL: k_proj's bias has an analytically zero gradient (softmax ignores a shift shared by all keys),
# so its gradient is rounding noise, which AdamW scales by lr / eps; at lr 0.01 that noise alone reaches 1e-5.
"$HPS" train-rm "${COMMON[@]}" --train.lr=1e-3 --train.max_steps=3 --train.batch_prompts=4 --train.out_dir="$W/rm1" > /dev/null
two_ranks train-rm "${COMMON[@]}" --train.lr=1e-3 --train.max_steps=3 --train.batch_prompts=2 --train.out_dir="$W/rm2"
same "$W/rm1" "$W/rm2" "$(last "$W/rm1")/model/model.safetensors"

# A rank that dies: rank 0 is held right after checkpoint 2 (HPS_TEST_PAUSE_AFTER_SAVE) while rank 1 waits for
# it at the checkpoint barrier; rank 0 is SIGKILLed there. Rank 1 must exit non-zero naming itself and the
# failed collective within the timeout (never hang); a 2-rank --resume then reaches the uninterrupted weights.
port=$((20000 + RANDOM % 30000))
KILL_RUN=("${HPS_RUN[@]}" --train.batch_prompts=2 --train.save_every=1 --train.out_dir="$W/hps_killed")
RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port HPS_TEST_PAUSE_AFTER_SAVE="2:$W/held" HPS_DIST_TIMEOUT=30 \
  "$HPS" "${KILL_RUN[@]}" > "$W/k0.log" 2>&1 &
p0=$!
RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port HPS_DIST_TIMEOUT=30 "$HPS" "${KILL_RUN[@]}" > "$W/k1.log" 2>&1 &
p1=$!
deadline=$((SECONDS + 120))
until [[ -e $W/held ]]; do
  kill -0 $p0 2> /dev/null || { cat "$W/k0.log" >&2; fail "rank 0 ended before checkpoint 2"; }
  ((SECONDS < deadline)) || fail "rank 0 never reached checkpoint 2"
  sleep 0.05
done
kill -9 $p0
wait $p0 || true
killed_at=$SECONDS
rc=0
wait $p1 || rc=$?
((rc == 1)) || { cat "$W/k1.log" >&2; fail "rank 1 exited with $rc after rank 0 died (expected 1)"; }
((SECONDS - killed_at <= 60)) || fail "rank 1 took $((SECONDS - killed_at)) s to stop"
grep -q "^hps: \[rank 1 of 2\] .*rank 1 of 2: barrier failed" "$W/k1.log" || fail "rank 1's error does not name it: $(cat "$W/k1.log")"
echo "rank 0 killed: rank 1 stopped in $((SECONDS - killed_at)) s: $(grep -o 'barrier failed' "$W/k1.log")"
two_ranks "${KILL_RUN[@]}" --resume
grep -q "resumed from .*checkpoint-00000002 at step 2/4" "$W/rank0.log" || fail "the resume did not start at checkpoint 2: $(cat "$W/rank0.log")"
same "$W/hps1" "$W/hps_killed" "$(last "$W/hps1")/adapter/adapter_model.safetensors"

# Another world size with the same global batch: 1 process (batch 4) stops after step 2, 2 ranks (batch 2)
# resume it and reach the uninterrupted weights.
"$HPS" "${HPS_RUN[@]}" --train.batch_prompts=4 --train.save_every=1 --train.stop_after=2 --train.out_dir="$W/hps_ws" > /dev/null
two_ranks "${HPS_RUN[@]}" --train.batch_prompts=2 --train.out_dir="$W/hps_ws" --resume
grep -q "resumed from .*checkpoint-00000002 at step 2/4" "$W/rank0.log" || fail "the 2-rank resume did not start at step 2"
same "$W/hps1" "$W/hps_ws" "$(last "$W/hps1")/adapter/adapter_model.safetensors"
# ... and one that changes the global batch is refused, naming the field.
rc=0
"$HPS" "${HPS_RUN[@]}" --train.batch_prompts=2 --train.out_dir="$W/hps_ws" --resume > "$W/ws.log" 2>&1 || rc=$?
((rc == 1)) && grep -q "train.global_batch_prompts was 4, now 2" "$W/ws.log" || fail "a changed global batch was not refused: $(tail -2 "$W/ws.log")"
echo "resumed at another world size with the same global batch; a changed global batch is refused"

# Ranks launched with different settings: every rank stops with an error naming the mismatch.
port=$((20000 + RANDOM % 30000))
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$HPS" "${HPS_RUN[@]}" --train.batch_prompts=2 \
    --train.lr=0.0$((r + 1)) --train.out_dir="$W/mismatch" > "$W/m$r.log" 2>&1 &
  pids[r]=$!
done
for r in 0 1; do
  rc=0
  wait "${pids[r]}" || rc=$?
  ((rc == 1)) && grep -q "config error: the effective config differs between the ranks" "$W/m$r.log" ||
    fail "rank $r with a different config: exit $rc, $(tail -1 "$W/m$r.log")"
done
echo "ranks with different configs: both refused"

# The real launcher.
if [[ -z $TORCHRUN ]]; then
  [[ ${CI:-} != true && ${CI:-} != 1 ]] || fail "no torchrun given and CI=true: the launcher test must run in CI"
  echo "no torchrun: launcher test skipped"
else
  "$TORCHRUN" --standalone --nproc-per-node=2 --no-python "$HPS" "${HPS_RUN[@]}" --train.batch_prompts=2 \
    --train.out_dir="$W/hps_torchrun" > "$W/torchrun.log" 2>&1 || { tail -20 "$W/torchrun.log" >&2; fail "torchrun exited non-zero"; }
  same "$W/hps1" "$W/hps_torchrun" "$(last "$W/hps1")/adapter/adapter_model.safetensors"
fi
echo "data-parallel runs match one process"

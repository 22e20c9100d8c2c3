#!/usr/bin/env bash
# `hps train` on a Qwen2-0.5B-shaped random model in bf16 on CUDA (HPS × DPO, full fine-tuning, 8 prompts
# × 2 forwarded responses × 1024 tokens per step — the shape of hf_pref_bench.py's first workload), with and
# without the reference log-prob cache, and (issue 14) as a 1-process torchrun group: the same run with its
# gradients all-reduced through c10d's Reducer over NCCL on one rank — the data-parallel machinery's cost.
# Called by gpu_check.sh with the same environment; appends to $S.
set -u
W=$(mktemp -d)
python3 tools/bench/make_long_ranked.py "$W/data.jsonl" 80 4 900
"$B/hps" model init --config-json bench/qwen05_config.json --tokenizer tests/fixtures/tokenizers/qwen2 \
  --dtype bfloat16 --out "$W/qwen05" >> "$S" 2>&1
for run in false true group; do
  cache=$run group=()
  [ "$run" = group ] && cache=false group=(env RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29517)
  t0=$(date +%s)
  "${group[@]}" "$B/hps" train --model.path="$W/qwen05" --data.path="$W/data.jsonl" --model.device=cuda --lora.enabled=false \
    --loss.preference=hps --loss.objective=dpo --train.max_steps=10 --train.batch_prompts=8 --train.lr=1e-6 \
    --data.max_prompt_length=512 --data.max_length=1024 --train.out_dir="$W/run_$run" --train.ref_cache=$cache \
    > "$OUT/train_$run.log" 2>&1
  echo "hps train (ref_cache=$cache, $run) rc $? ($(( $(date +%s) - t0 )) s)" >> "$S"
  grep "gradient all-reduce" "$OUT/train_$run.log" >> "$S"
  cp "$W/run_$run/metrics.jsonl" "$OUT/train_metrics_$run.jsonl" 2> /dev/null
  python3 - "$W/run_$run/metrics.jsonl" "$run" >> "$S" 2>&1 <<'PY'
import json, sys, statistics
m = [json.loads(l) for l in open(sys.argv[1])]
late = m[2:]  # steps 3.. (warm)
tps = statistics.median(x["tokens_per_s"] for x in late)
print(json.dumps({"what": "hps train HPS×DPO qwen2-0.5B shape bf16, full FT", "run": sys.argv[2],
                  "steps": len(m), "median_tokens_per_s": round(tps), "median_step_s": round(16384 / tps, 4),
                  "peak_GiB": round(max(x["peak_gib"] for x in m), 2), "skipped": sum(x["skipped"] for x in m)}))
PY
done
rm -rf "$W"

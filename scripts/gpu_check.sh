#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repository root, with gpu_bundle/ carried:
#   tests: CUDA tests, `hps logprobs --device cuda` vs CPU
#   pref:  hps preference-step benchmark (fused and naive log-probs) and hf_pref_bench.py in the same call
#   real:  the real-lengths workload (hh_rlhf_lengths.jsonl): bench_model --real, packed and --padded, next to
#          hf_pref_bench_real.py (Qwen2-0.5B and Llama-1B shapes, 16 prompts a step)
#   train: `hps train` throughput (scripts/gpu_train_bench.sh)
#   gen:   bench_generate and hf_gen_bench.py in the same call (fixed shapes), then the realistic workload
#          (hh_rlhf_lengths.jsonl prompts, n = 8, EOS bias: bench_generate --workload hh; shared prompt cache with
#          and without continuous batching, and copied caches) next to its HF twin bench/hf_gen_realistic.py
# GPU_SECTIONS picks some (default: all). Everything lands in $OUT (summary.txt first).
set -u
SECTIONS=${GPU_SECTIONS:-"tests real pref train gen"}
on() { [[ " $SECTIONS " == *" $1 "* ]]; }
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
B=$PWD/gpu_bundle
S="$OUT/summary.txt"
TORCH_LIB=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
SITE=$(dirname "$(dirname "$TORCH_LIB")")
NV=$(ls -d "$SITE"/nvidia/*/lib "$SITE"/nvidia/cu13/lib 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="$B/lib:$TORCH_LIB:$NV${LD_LIBRARY_PATH:-}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
  echo "missing libs:"; ldd "$B/hps_tests" | grep "not found"; } >> "$S" 2>&1

if on tests; then
t0=$(date +%s)
HPS_FIXTURES_DIR=tests/fixtures timeout 240 "$B/hps_tests" > "$OUT/tests.txt" 2>&1
echo "hps_tests rc $? ($(( $(date +%s) - t0 )) s): $(grep -E '^\[  (PASSED|FAILED) +\]' "$OUT/tests.txt" | head -2 | tr '\n' ' ')" >> "$S"
grep -E "^\[       OK \] (ModelCuda|LossDevice|Packing.Cuda|PrefixCache.Cuda)" "$OUT/tests.txt" >> "$S"
grep -E "^\[  FAILED|Failure" -A4 "$OUT/tests.txt" | head -40 >> "$S"

M=tests/fixtures/models
"$B/hps" logprobs --model $M/llama --data $M/pretokenized.jsonl --out "$OUT/lp_cpu.jsonl" >> "$S" 2>&1
"$B/hps" logprobs --model $M/llama --data $M/pretokenized.jsonl --out "$OUT/lp_cuda.jsonl" --device cuda >> "$S" 2>&1
python3 - "$OUT/lp_cpu.jsonl" "$OUT/lp_cuda.jsonl" >> "$S" 2>&1 <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]; b = [json.loads(l) for l in open(sys.argv[2])]
err = max(abs(x - y) for r, s in zip(a, b) for x, y in zip(r["logp"], s["logp"]))
print(f"logprobs cuda vs cpu: {len(a)} records, max |diff| = {err:.2e}")
PY
fi

if on pref; then
t0=$(date +%s)
timeout 200 "$B/bench_model" --preset gpu --device cuda > "$OUT/bench_hps.jsonl" 2> "$OUT/bench_hps.err"
echo "bench_model rc $? ($(( $(date +%s) - t0 )) s)" >> "$S"
timeout 90 "$B/bench_model" --shape qwen05 --prompts 8 --n 2 --seqlen 1024 --device cuda --naive \
  >> "$OUT/bench_hps.jsonl" 2>> "$OUT/bench_hps.err"
echo "bench_model naive rc $?" >> "$S"
cat "$OUT/bench_hps.jsonl" >> "$S"

if [ -f "$B/hf_pref_bench.py" ]; then
  t0=$(date +%s)
  OUT="$OUT" timeout 200 python3 "$B/hf_pref_bench.py" > "$OUT/bench_hf.txt" 2>&1
  echo "hf_pref_bench rc $? ($(( $(date +%s) - t0 )) s)" >> "$S"
  grep '^{' "$OUT/bench_hf.txt" >> "$S"
fi
fi

if on real; then
  for mode in "" --padded; do
    t0=$(date +%s)
    timeout 150 "$B/bench_model" --real "$B/hh_rlhf_lengths.jsonl" --preset gpu --device cuda $mode \
      > "$OUT/bench_real${mode}.jsonl" 2> "$OUT/bench_real${mode}.err"
    echo "bench_model --real $mode rc $? ($(( $(date +%s) - t0 )) s)" >> "$S"
    cat "$OUT/bench_real${mode}.jsonl" >> "$S"; tail -3 "$OUT/bench_real${mode}.err" >> "$S"
  done
  t0=$(date +%s)
  OUT="$OUT" timeout 150 python3 "$B/hf_pref_bench_real.py" > "$OUT/bench_hf_real.txt" 2>&1
  echo "hf_pref_bench_real rc $? ($(( $(date +%s) - t0 )) s)" >> "$S"
  grep '^{' "$OUT/bench_hf_real.txt" >> "$S"; grep -i error "$OUT/bench_hf_real.txt" | tail -3 >> "$S"
fi

export B S OUT
if on train; then bash scripts/gpu_train_bench.sh; fi

if on gen; then
  t0=$(date +%s)
  timeout 200 "$B/bench_generate" --device cuda --shape qwen05 --batches 16,128 >> "$S" 2>&1
  echo "bench_generate rc $? ($(( $(date +%s) - t0 )) s)" >> "$S"
  if [ -f "$B/hf_gen_bench.py" ]; then
    t0=$(date +%s)
    OUT="$OUT" timeout 200 python3 "$B/hf_gen_bench.py" > "$OUT/bench_hf_gen.txt" 2>&1
    echo "hf_gen_bench rc $? ($(( $(date +%s) - t0 )) s)" >> "$S"
    grep '^{' "$OUT/bench_hf_gen.txt" >> "$S"
  fi
  for who in hps hf; do
    t0=$(date +%s)
    if [ $who = hps ]; then
      # continuous batching + shared prompt cache (the defaults), one call per batch, and copied prompt caches
      for mode in "--per-batch 0" "--per-batch 1" "--per-batch 0 --copy-prompt 1"; do
        timeout 120 "$B/bench_generate" --workload hh --lengths "$B/hh_rlhf_lengths.jsonl" --device cuda --shape qwen05 \
          --prompts 32 --n 8 --new 256 --batch-prompts 8 $mode >> "$S" 2>&1
        rc=$?
      done
    else
      timeout 200 python3 bench/hf_gen_realistic.py "$B/hh_rlhf_lengths.jsonl" --device cuda --prompts 32 --n 8 \
        --new 256 --batch-prompts 8 > "$OUT/bench_hf_realistic.txt" 2>&1
      rc=$?
      grep '^{' "$OUT/bench_hf_realistic.txt" >> "$S"
    fi
    echo "realistic generate ($who) rc $rc ($(( $(date +%s) - t0 )) s)" >> "$S"
  done
fi
cat "$S"

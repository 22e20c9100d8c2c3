#!/usr/bin/env bash
# Data-parallel scaling on this machine: the same HPS run (same global batch, same steps) as 1 process and as 2
# processes over Gloo, one thread each (OMP_NUM_THREADS=1), back to back. Step time is taken between two run
# lengths so that start-up (loading, rendezvous) cancels: (T(long) − T(short)) / (long − short steps).
# Usage: bench/ddp_scaling.sh BUILD_DIR [STEPS]   (a Qwen2-shaped model of ~3M parameters; full fine-tuning)
set -euo pipefail
B=${1:?usage: ddp_scaling.sh BUILD_DIR [STEPS]}
HPS=$B/hps FIX=$(dirname "$0")/../tests/fixtures LONG=${2:-24} SHORT=4
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export OMP_NUM_THREADS=1
cat > "$W/config.json" <<JSON
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 1536, "hidden_size": 256,
 "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
 "tie_word_embeddings": true, "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "pad_token_id": 0}
JSON
"$HPS" model init --config-json "$W/config.json" --tokenizer "$FIX/tokenizers/qwen2" --seed 1 --out "$W/model" > /dev/null
for i in $(seq 1 256); do
  echo "{\"prompt\": \"Question $i: tell me about colour number $i and why it matters to painters.\", \"responses\": [\"A long careful answer about colour $i and painters, with detail.\", \"A shorter answer $i.\", \"Banana banana banana $i.\"], \"rewards\": [$i, 0.5, -1]}"
done > "$W/data.jsonl"
ARGS=(train --model.path="$W/model" --data.path="$W/data.jsonl" --loss.preference=hps --lora.enabled=false --train.lr=1e-5)
run1() { "$HPS" "${ARGS[@]}" --train.batch_prompts=8 --train.max_steps="$1" --train.out_dir="$W/one$1" > /dev/null; }
# run2 STEPS BUCKET_MB: 2 ranks; BUCKET_MB 0 = one all-reduce after backward, else the Reducer's buckets.
run2() {
  local port=$((20000 + RANDOM % 30000)) p0 p1 out=$W/two$1-$2
  local a=("${ARGS[@]}" --train.batch_prompts=4 --train.max_steps="$1" --train.ddp_bucket_cap_mb="$2" --train.out_dir="$out")
  RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$HPS" "${a[@]}" > /dev/null & p0=$!
  RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$HPS" "${a[@]}" > /dev/null & p1=$!
  wait $p0 && wait $p1
}
calc() { awk "BEGIN { print $1 }"; }
seconds() { local t0=$EPOCHREALTIME; "$@"; calc "$EPOCHREALTIME - $t0"; }
for n in $SHORT $LONG; do
  one[$n]=$(seconds run1 "$n"); two[$n]=$(seconds run2 "$n" 25); after[$n]=$(seconds run2 "$n" 0)
done
s1=$(calc "(${one[$LONG]} - ${one[$SHORT]}) / ($LONG - $SHORT)")
s2=$(calc "(${two[$LONG]} - ${two[$SHORT]}) / ($LONG - $SHORT)")
s3=$(calc "(${after[$LONG]} - ${after[$SHORT]}) / ($LONG - $SHORT)")
printf 'global batch 8 prompts × 2 forwarded responses, full fine-tuning, %d vs %d steps\n' "$LONG" "$SHORT"
printf '1 process : %.3f s/step (runs: %.1f s, %.1f s)\n' "$s1" "${one[$SHORT]}" "${one[$LONG]}"
printf '2 processes: %.3f s/step (runs: %.1f s, %.1f s), Reducer buckets of 25 MiB during backward\n' "$s2" "${two[$SHORT]}" "${two[$LONG]}"
printf '2 processes: %.3f s/step (runs: %.1f s, %.1f s), one all-reduce after backward (ddp_bucket_cap_mb 0)\n' "$s3" "${after[$SHORT]}" "${after[$LONG]}"
printf 'speed-up %.2f×, efficiency %.0f %%\n' "$(calc "$s1 / $s2")" "$(calc "50 * $s1 / $s2")"

#!/usr/bin/env bash
# Real-data profile of `hps pipeline` (an optional benchmark, not a test): the shared HH-RLHF harmless-base
# file with the tiny model family on CPU. The first 1500 records train (SFT on the chosen responses, the
# reward model on the chosen/rejected pairs, K samples per prompt from the SFT model annotated by that
# reward model, then BT / PL / HPS × DPO); the last 300 are the held-out test set (BLEU references and the
# margin pairs). The model is a randomly initialized 2-layer Qwen2 with the committed 1500-token BPE
# tokenizer (trained partly on HH text), so the numbers measure the pipeline, not a useful assistant.
# Usage: bench/hh_pipeline.sh [OUT]     (HPS=path/to/hps, HH=path/to/the .jsonl.gz to override)
set -euo pipefail
cd "$(dirname "$0")/.."
HPS=${HPS:-build/hps}
OUT=${1:-runs/hh-tiny}
HH=${HH:-../shared/data/hh-rlhf-harmless-base-test-1800.jsonl.gz}
[ -f "$HH" ] || { echo "skipped: $HH not found (the shared data folder is not beside this checkout)"; exit 0; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)  # absolute: relative paths in a pipeline TOML would resolve against its own folder
zcat "$HH" > "$OUT/all.jsonl"
head -n 1500 "$OUT/all.jsonl" > "$OUT/train.jsonl"
tail -n 300 "$OUT/all.jsonl" > "$OUT/test.jsonl"
cat > "$OUT/model_config.json" <<JSON
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 1536, "hidden_size": 64,
 "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "tie_word_embeddings": true, "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "max_position_embeddings": 1024,
 "pad_token_id": 0}
JSON
[ -f "$OUT/base/model.safetensors" ] || "$HPS" model init --config-json "$OUT/model_config.json" \
  --tokenizer tests/fixtures/tokenizers/qwen2 --std 0.05 --out "$OUT/base"
cat > "$OUT/pipeline.toml" <<TOML
[run]
dir = "$OUT/run"
seed = 0
[policy]
path = "$OUT/base"
chat_format = "hh"
[sft.data]
path = "$OUT/train.jsonl"
[sft.train]
max_steps = 400
lr = 3e-3
batch_prompts = 16
[generate]
prompts = "$OUT/train.jsonl"
n = 4
temperature = 1.0
max_new_tokens = 32
batch_prompts = 64
[reward]
init = "sft"
[reward.data]
path = "$OUT/train.jsonl"
[reward.train]
max_steps = 200
lr = 1e-3
batch_prompts = 16
[train]
methods = "bt,pl,hps"
max_steps = 100
lr = 1e-4
batch_prompts = 8
[loss]
objective = "dpo"
beta = 0.1
[lora]
enabled = false
[eval]
prompts = "$OUT/test.jsonl"
n = 4
TOML
time "$HPS" pipeline --config "$OUT/pipeline.toml"

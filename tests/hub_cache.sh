#!/usr/bin/env bash
# Models by hub id (issue 17): a Hugging Face cache laid out as huggingface_hub writes it (blobs/, snapshot
# symlinks, refs/) is built here; `hps model inspect`, `hps logprobs` and `hps train` take "org/tiny[@rev]" and
# read the snapshot; a hub id the cache lacks is a named error saying how to fetch it.
# Usage: hub_cache.sh HPS FIXTURES
set -uo pipefail
HPS=$(realpath "$1") FIX=$(realpath "$2") HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { bash "$HERE/expect_exit.sh" "$@" > "$W/expect.txt" || { cat "$W/expect.txt" >&2; fail "$*"; }; }

"$HPS" model init --config-json "$FIX/train/tiny_qwen2_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 \
  --out "$W/model" > /dev/null || fail "model init"
commit=0123456789abcdef0123456789abcdef01234567
repo=$W/hub/models--org--tiny
mkdir -p "$repo/blobs" "$repo/snapshots/$commit" "$repo/refs"
for f in "$W"/model/*; do
  blob=$(sha256sum "$f" | cut -c1-64)
  cp "$f" "$repo/blobs/$blob"
  ln -s "../../blobs/$blob" "$repo/snapshots/$commit/$(basename "$f")"
done
printf '%s' "$commit" > "$repo/refs/main"
export HF_HUB_CACHE=$W/hub
cd "$W"  # no local folder named org/tiny here

expect 0 "architecture +Qwen2ForCausalLM" -- "$HPS" model inspect org/tiny
echo '{"prompt": "Hello", "responses": ["a b", "c"], "rewards": [1, 0]}' > data.jsonl
expect 0 "" -- "$HPS" logprobs --model org/tiny@main --data data.jsonl --out lp.jsonl
[[ $(wc -l < lp.jsonl) -eq 1 ]] || fail "logprobs by hub id wrote $(wc -l < lp.jsonl) lines"
cat > train.toml <<TOML
[model]
path = "org/tiny"
[data]
path = "data.jsonl"
max_prompt_length = 64
max_length = 128
[train]
max_steps = 1
batch_prompts = 1
out_dir = "run"
TOML
expect 0 "step 1/1" -- "$HPS" train --config train.toml
grep -q "\"model.path\": \"$repo/snapshots/$commit\"" run/checkpoint-00000001/trainer_state.json ||
  fail "the checkpoint does not record the snapshot folder: $(grep -o '"model.path": "[^"]*"' run/checkpoint-*/trainer_state.json)"
expect 1 "org/other is neither a local folder nor in the Hugging Face cache: no $W/hub/models--org--other \(fetch it with .hps download org/other.\)" -- \
  "$HPS" model inspect org/other
# Resolution never reaches the network (an endpoint nothing listens on would fail differently).
expect 1 "org/other is neither a local folder nor in the Hugging Face cache" -- \
  env HF_ENDPOINT=http://127.0.0.1:9 "$HPS" model inspect org/other
expect 1 "org/tiny@v9: the cache has no revision 'v9'" -- "$HPS" logprobs --model org/tiny@v9 --data data.jsonl --out x.jsonl
echo "hub ids resolve in the Hugging Face cache"

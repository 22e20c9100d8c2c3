#!/usr/bin/env bash
# Hostile inputs built here (issue 18): each must give a named error and a non-zero exit, never output.
#  - a model whose config makes every log-prob NaN (rope_theta = 0): hps logprobs writes nothing
#  - hps tokenize --file on a folder: an error naming it (it printed [] and exited 0)
# Usage: hostile_inputs.sh HPS FIXTURES
set -uo pipefail
HPS=$1 FIX=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_error() {  # expect_error NAME CODE REGEX -- command…: the exit code and message, via expect_exit.sh
  local name=$1
  shift
  bash "$(dirname "$0")/expect_exit.sh" "$@" > "$W/expect.txt" || { cat "$W/expect.txt" >&2; fail "$name"; }
  echo "$name: $(grep -m1 '^hps: ' "$W/expect.txt" | cut -c1-160)"
}

"$HPS" model init --config-json "$FIX/train/tiny_qwen2_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 \
  --out "$W/model" > /dev/null || fail "model init"
sed -i -E 's/"rope_theta": *[0-9.e+]+/"rope_theta": 0/' "$W/model/config.json"
grep -q '"rope_theta": 0' "$W/model/config.json" || fail "could not set rope_theta = 0"
echo '{"prompt": "Hello", "responses": ["a b", "c"], "rewards": [1, 0]}' > "$W/data.jsonl"
expect_error "logprobs with rope_theta = 0" 1 "data.jsonl:1: response 0 has log-prob (-?nan|inf).*nothing written" -- \
  "$HPS" logprobs --model "$W/model" --data "$W/data.jsonl" --out "$W/lp.jsonl"
[[ ! -e $W/lp.jsonl ]] || fail "logprobs wrote $W/lp.jsonl: $(head -c 200 "$W/lp.jsonl")"

expect_error "tokenize --file on a folder" 1 "$W is a folder, not a file" -- \
  "$HPS" tokenize --tokenizer "$FIX/tokenizers/qwen2" --file "$W"
echo "hostile inputs are named errors"

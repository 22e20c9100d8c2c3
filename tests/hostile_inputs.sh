#!/usr/bin/env bash
# Hostile inputs built here (issue 18): each must give a named error and a non-zero exit, never output.
#  - config.json: rope_theta = 0 (every log-prob was NaN), 200 000 000 layers (23.5 GB before noticing),
#    pad_token_id outside the vocabulary (model inspect said "problems none")
#  - NaN weights: hps logprobs, hps generate and hps score write nothing (they wrote null / garbage, exit 0)
#  - a row longer than max_position_embeddings (it ran for minutes)
#  - JSONL with a NUL byte in a line, or plain text after a gzip stream (records were lost without a word)
#  - hps tokenize --file on a folder: an error naming it (it printed [] and exited 0)
#  - chat templates with a syntax error, or raising on the conversation: the template, its line, its words
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
echo '{"prompt": "Hello", "responses": ["a b", "c"], "rewards": [1, 0]}' > "$W/data.jsonl"
echo '{"prompt": "Hello"}' > "$W/prompts.jsonl"
edit_config() {  # edit_config FOLDER SED-EXPRESSION: a copy of $W/model with config.json edited
  rm -rf "$1" && cp -r "$W/model" "$1" && sed -i -E "$2" "$1/config.json"
  ! cmp -s "$W/model/config.json" "$1/config.json" || fail "sed '$2' changed nothing"
}
edit_config "$W/theta0" 's/"rope_theta": *[0-9.e+]+/"rope_theta": 0/'
expect_error "rope_theta = 0" 1 "theta0/config.json: field 'rope_theta': must be a finite number > 0" -- \
  "$HPS" logprobs --model "$W/theta0" --data "$W/data.jsonl" --out "$W/lp.jsonl"
edit_config "$W/layers" 's/"num_hidden_layers": *[0-9]+/"num_hidden_layers": 200000000/'
expect_error "200 000 000 layers" 1 "field 'num_hidden_layers': must be in \[1, 4096\], found 200000000" -- \
  "$HPS" logprobs --model "$W/layers" --data "$W/data.jsonl" --out "$W/lp.jsonl"
edit_config "$W/pad" 's/"pad_token_id": *[0-9]+/"pad_token_id": 1536/'
expect_error "pad_token_id = vocab_size" 1 "config.json: field 'pad_token_id': a token id must be an integer in \[0, vocab_size = 1536\)" -- \
  "$HPS" model inspect "$W/pad"

# Every weight NaN (F32 quiet NaN over the whole data section of model.safetensors).
nan_weights() {
  python3 - "$1/model.safetensors" <<'PY' || fail "could not write NaN weights"
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
start = 8 + struct.unpack("<Q", b[:8])[0]
b[start:] = b"\x00\x00\xc0\x7f" * ((len(b) - start) // 4)
open(sys.argv[1], "wb").write(b)
PY
}
cp -r "$W/model" "$W/nan" && nan_weights "$W/nan"
expect_error "logprobs with NaN weights" 1 "data.jsonl:1: response 0 has log-prob (-?nan|inf).*nothing written" -- \
  "$HPS" logprobs --model "$W/nan" --data "$W/data.jsonl" --out "$W/lp.jsonl"
[[ ! -e $W/lp.jsonl ]] || fail "logprobs wrote $W/lp.jsonl: $(head -c 200 "$W/lp.jsonl")"
for t in 0 1; do
  expect_error "generate with NaN weights (temperature $t)" 1 "non-finite logits at new token 1" -- \
    "$HPS" generate --model "$W/nan" --data "$W/prompts.jsonl" --out "$W/gen.jsonl" --temperature $t --max-new-tokens 4
done
[[ ! -s $W/gen.jsonl ]] || fail "generate wrote $W/gen.jsonl: $(head -c 200 "$W/gen.jsonl")"
sed 's/Qwen2ForCausalLM/Qwen2ForSequenceClassification/; s/"pad_token_id"/"num_labels": 1, "pad_token_id"/' \
  "$FIX/train/tiny_qwen2_config.json" > "$W/rm_config.json"
"$HPS" model init --config-json "$W/rm_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 --out "$W/rm" > /dev/null ||
  fail "model init (reward model)"
nan_weights "$W/rm"
expect_error "score with NaN weights" 1 "data.jsonl:1: the reward model scored a response (-?nan|inf).*nothing of this chunk was written" -- \
  "$HPS" score --model "$W/rm" --data "$W/data.jsonl" --out "$W/scored.jsonl"
[[ ! -s $W/scored.jsonl ]] || fail "score wrote $W/scored.jsonl: $(head -c 200 "$W/scored.jsonl")"

# A 3000-word response: past the tiny model's 2048 positions.
printf '{"prompt": "Hello", "responses": ["%s", "c"]}\n' "$(printf 'word %.0s' $(seq 3000))" > "$W/long.jsonl"
expect_error "a row past max_position_embeddings" 1 "reaches position [0-9]+, beyond the model's context \(max_position_embeddings = 2048" -- \
  "$HPS" logprobs --model "$W/model" --data "$W/long.jsonl" --out "$W/lp.jsonl"
expect_error "…naming the record" 1 "while scoring the records at lines 1$" -- \
  "$HPS" logprobs --model "$W/model" --data "$W/long.jsonl" --out "$W/lp.jsonl"

# Records that zlib and the JSON parser used to drop without a word.
printf '{"prompt": "a", "responses": ["x", "y"], "rewards": [1, 0]}\n{"prompt": "b", "responses": ["x", "y"], "rewards": [1, 0]}\0{"prompt": "c"}\n' > "$W/nul.jsonl"
expect_error "a NUL byte in a line" 1 "nul.jsonl:2: NUL byte at column 60" -- "$HPS" data inspect "$W/nul.jsonl"
gzip -c "$W/data.jsonl" > "$W/tail.jsonl.gz" && cat "$W/data.jsonl" >> "$W/tail.jsonl.gz"
expect_error "text after a gzip stream" 1 "tail.jsonl.gz: [0-9]+: bytes after the end of the gzip stream that are not gzip" -- \
  "$HPS" data inspect "$W/tail.jsonl.gz"

expect_error "tokenize --file on a folder" 1 "$W is a folder, not a file" -- \
  "$HPS" tokenize --tokenizer "$FIX/tokenizers/qwen2" --file "$W"
# Chat templates: a syntax error names the template and its line; a template's raise_exception reaches the user.
chat_tokenizer() {  # chat_tokenizer FOLDER TEMPLATE: the qwen2 fixture tokenizer with that chat_template
  mkdir -p "$1" && cp "$FIX/tokenizers/qwen2/tokenizer.json" "$1/" && printf '%s' "$2" > "$1/chat_template.jinja"
}
chat_tokenizer "$W/badtpl" $'{% for m in messages %}\n{{ m.content }\n{% endfor %}'
expect_error "a chat template with a syntax error" 1 "badtpl chat_template line 2: unclosed tag" -- \
  "$HPS" tokenize --tokenizer "$W/badtpl" --messages --text '[{"role": "user", "content": "Hi"}]'
chat_tokenizer "$W/nosys" "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m.content }}{% endfor %}"
expect_error "a template's raise_exception" 1 "nosys chat_template line 1: System role not supported" -- \
  "$HPS" tokenize --tokenizer "$W/nosys" --messages --text '[{"role": "system", "content": "s"}, {"role": "user", "content": "Hi"}]'
echo "hostile inputs are named errors"

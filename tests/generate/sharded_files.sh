#!/usr/bin/env bash
# hps generate and hps score over 2 Gloo ranks: each rank writes whole batches / chunks into OUT.part-*, rank 0
# joins them, and the joined file is byte-identical to one process's — with seeded sampling, a short last batch,
# an interrupted sharded run resumed, and scoring in place; hps eval's model scoring in shards.
# Usage: sharded_files.sh HPS FIXTURES
set -euo pipefail
HPS=$1 FIX=$2
source "$(dirname "$0")/../two_ranks.sh"  # $W, fail, two_ranks

"$HPS" model init --config-json "$FIX/train/tiny_qwen2_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 \
  --seed 5 --out "$W/policy" > /dev/null
sed 's/Qwen2ForCausalLM/Qwen2ForSequenceClassification/; s/"pad_token_id": 0/"pad_token_id": 0, "num_labels": 1/' \
  "$FIX/train/tiny_qwen2_config.json" > "$W/rm_config.json"
"$HPS" model init --config-json "$W/rm_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 --seed 6 \
  --out "$W/rm" > /dev/null
for i in 1 2 3 4 5 6 7 8 9; do echo "{\"prompt\": \"Question $i: name a colour.\"}"; done > "$W/prompts.jsonl"


GEN1=(generate --model "$W/policy" --data "$W/prompts.jsonl" --n 3 --temperature 1.0 --seed 4 --max-new-tokens 6)
GEN=("${GEN1[@]}" --batch-prompts 2)
"$HPS" "${GEN[@]}" --out "$W/one.jsonl" 2> /dev/null
two_ranks "${GEN[@]}" --out "$W/two.jsonl"
cmp "$W/one.jsonl" "$W/two.jsonl" || fail "sharded generation differs from one process"
ls "$W"/two.jsonl.part-* > /dev/null 2>&1 && fail "parts left after joining"
echo "generate: 2 ranks = 1 process, byte for byte ($(wc -l < "$W/two.jsonl") prompts)"
# The engine's layouts change no byte: one call per batch with a copy of the prompt's cache per sample (the
# defaults are continuous batching and one shared prompt cache).
"$HPS" "${GEN[@]}" --no-continuous-batching --copy-prompt-cache --out "$W/plain.jsonl" 2> /dev/null
cmp "$W/one.jsonl" "$W/plain.jsonl" || fail "--no-continuous-batching --copy-prompt-cache changed the samples"

# One batch for two ranks: rank 0's part is empty.
"$HPS" "${GEN1[@]}" --batch-prompts 16 --out "$W/one16.jsonl" 2> /dev/null
two_ranks "${GEN1[@]}" --batch-prompts 16 --out "$W/two16.jsonl"
cmp "$W/one16.jsonl" "$W/two16.jsonl" || fail "sharded generation with an empty part differs from one process"
echo "generate: one batch on 2 ranks (rank 0's part empty) = 1 process"

# Interrupted: each rank stops after one batch; nothing is joined; the rerun continues both parts.
two_ranks "${GEN[@]}" --out "$W/resumed.jsonl" --stop-after-prompts 2
[[ ! -e $W/resumed.jsonl ]] || fail "an interrupted sharded run wrote the joined file"
grep -q "parts (.*) are kept" "$W/rank0.log" || fail "rank 0 did not say the parts are kept: $(cat "$W/rank0.log")"
two_ranks "${GEN[@]}" --out "$W/resumed.jsonl"
grep -q "resuming: 2 of" "$W/rank0.log" || fail "rank 0 did not resume its part"
cmp "$W/one.jsonl" "$W/resumed.jsonl" || fail "the resumed sharded generation differs from one process"
echo "generate: interrupted on 2 ranks and resumed = 1 process"

SCORE=(score --model "$W/rm" --chunk-prompts 2)
cp "$W/one.jsonl" "$W/scored_one.jsonl" && cp "$W/one.jsonl" "$W/scored_two.jsonl"
"$HPS" "${SCORE[@]}" --data "$W/scored_one.jsonl" --out "$W/scored_one.jsonl" 2> /dev/null
two_ranks "${SCORE[@]}" --data "$W/scored_two.jsonl" --out "$W/scored_two.jsonl"
grep -q '"rewards"' "$W/scored_two.jsonl" || fail "scored file has no rewards"
cmp "$W/scored_one.jsonl" "$W/scored_two.jsonl" || fail "sharded scoring differs from one process"
echo "score (in place): 2 ranks = 1 process, byte for byte"
# hps eval with models: each rank scores a share of the test pairs and winning responses (margins, KL), rank 0
# evaluates; results.json equals one process's (its numbers to 1e-6: batches differ in composition).
"$HPS" model init --config-json "$FIX/train/tiny_qwen2_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 \
  --seed 7 --out "$W/ref" > /dev/null
for i in 1 2 3 4 5 6 7 8 9; do
  echo "{\"prompt\": \"Question $i: name a colour.\", \"responses\": [\"Red $i.\", \"Blue, maybe.\", \"No\"], \"rewards\": [$i, 0.5, -1]}"
done > "$W/test.jsonl"
EVAL=(eval --generations "$W/scored_one.jsonl" --test "$W/test.jsonl" --policy "$W/policy" --reference "$W/ref")
"$HPS" "${EVAL[@]}" --out "$W/eval_one" > /dev/null
two_ranks "${EVAL[@]}" --out "$W/eval_two"
[[ -e $W/eval_two/results.json ]] || fail "the 2-rank eval wrote no results.json"
skeleton() { sed -E 's/-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/N/g' "$1"; }
numbers() { grep -oE -- '-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?' "$1"; }
cmp <(skeleton "$W/eval_one/results.json") <(skeleton "$W/eval_two/results.json") || fail "sharded eval results differ in shape"
paste <(numbers "$W/eval_one/results.json") <(numbers "$W/eval_two/results.json") |
  awk '{ d = $1 - $2; if (d < 0) d = -d; a = $1 < 0 ? -$1 : $1; if (d > 1e-6 * (a > 1 ? a : 1)) { print "FAIL: " $1 " vs " $2 > "/dev/stderr"; bad = 1 } } END { exit bad }' ||
  fail "sharded eval results differ from one process"
grep -q '"kl' "$W/eval_two/results.json" || fail "no KL in the sharded eval results"
echo "eval (models scored in shards): 2 ranks = 1 process ($(numbers "$W/eval_one/results.json" | wc -l) numbers)"
echo "sharded files match one process"

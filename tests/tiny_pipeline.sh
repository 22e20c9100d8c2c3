# Sourced by the pipeline tests (with HPS, FIX and W set): tiny_pipeline writes $W/base (a tiny random Qwen2
# with the fixture tokenizer), $W/data.jsonl (3 prompts) and $W/p.toml, a pipeline over them into $W/run that
# runs every stage in seconds (a few steps each; the fixture's bad line 4 is skipped by the SFT stage).
tiny_pipeline() {
  "$HPS" model init --config-json "$FIX/train/tiny_qwen2_config.json" --tokenizer "$FIX/tokenizers/qwen2" --std 0.1 \
    --out "$W/base" > /dev/null
  head -3 "$FIX/data/ranked_sample.jsonl" > "$W/data.jsonl"
  cat > "$W/p.toml" <<TOML
[run]
dir = "$W/run"
[policy]
path = "$W/base"
[sft.data]
path = "$FIX/data/ranked_sample.jsonl"
[sft.train]
max_steps = 3
lr = 0.01
[generate]
prompts = "$W/data.jsonl"
n = 4
max_new_tokens = 8
[reward.train]
max_steps = 3
lr = 0.01
[train]
methods = "bt,pl,hps"
max_steps = 3
lr = 5e-7
batch_prompts = 3
[eval]
prompts = "$W/data.jsonl"
n = 3
TOML
}

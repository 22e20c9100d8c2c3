"""HF twin of `bench_generate --workload hh` (bench/bench_generate.cpp): transformers' generate on the realistic
workload — prompts with the prompt lengths of hh_rlhf_lengths.jsonl (cut to 512 tokens, random ids), n samples
each (num_return_sequences), temperature 0.9, top-k and top-p off, up to --new new tokens, and the same EOS logit
bias T·ln((V−1)·p/(1−p)) with p = 1 / (the file's mean response length, capped at --new), applied before
temperature as hps applies its logit_bias. Prints one JSON line like hps's; run both in the same call.

    python bench/hf_gen_realistic.py ../shared/bench/hh_rlhf_lengths.jsonl [--model DIR] [--device cuda]
        [--prompts 32] [--n 8] [--new 256] [--batch-prompts 8]
Without --model: a random Qwen2-0.5B-shaped model in bf16, the shape of ../shared/bench/hf_gen_bench.py."""
import argparse, json, math, time
import torch
from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList, Qwen2Config

ap = argparse.ArgumentParser()
ap.add_argument("lengths")
ap.add_argument("--model")
ap.add_argument("--device", default="cpu")
ap.add_argument("--prompts", type=int, default=32)
ap.add_argument("--n", type=int, default=8)
ap.add_argument("--new", type=int, default=256)
ap.add_argument("--batch-prompts", type=int, default=8)
a = ap.parse_args()
dtype = torch.bfloat16 if a.device.startswith("cuda") else torch.float32
if a.model:
    m = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype).to(a.device).eval()
else:
    cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096,
                      tie_word_embeddings=True, rope_theta=1e6, pad_token_id=0, eos_token_id=0)
    with torch.device(a.device):
        m = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa").eval()
V = m.config.vocab_size
eos = m.config.eos_token_id
eos = (eos[0] if isinstance(eos, list) else eos) or 0

lens, resp = [], []
for line in open(a.lengths):
    if len(lens) == a.prompts:
        break
    r = json.loads(line)
    lens.append(min(512, max(1, r["prompt"])))
    resp += [min(x, a.new) for x in r["responses"]]
T = 0.9
p = len(resp) / sum(resp) if resp else 1 / 64
bias = T * math.log((V - 1) * p / (1 - p))

class EosBias(LogitsProcessor):
    def __call__(self, input_ids, scores):
        scores[:, eos] += bias
        return scores

g = torch.Generator().manual_seed(3)
prompts = [torch.randint(2, V, (n,), generator=g) for n in lens]
for rep in range(2):  # the first warms up
    tokens = 0
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for s in range(0, len(prompts), a.batch_prompts):
        batch = prompts[s:s + a.batch_prompts]
        P = max(len(x) for x in batch)
        ids = torch.zeros(len(batch), P, dtype=torch.long)
        mask = torch.zeros(len(batch), P, dtype=torch.long)
        for i, x in enumerate(batch):  # left padding, as hps
            ids[i, P - len(x):] = x
            mask[i, P - len(x):] = 1
        with torch.no_grad():
            out = m.generate(ids.to(a.device), attention_mask=mask.to(a.device), do_sample=True, temperature=T,
                             top_k=0, top_p=1.0, max_new_tokens=a.new, num_return_sequences=a.n,
                             logits_processor=LogitsProcessorList([EosBias()]), eos_token_id=eos, pad_token_id=0)
        for row in out[:, P:].tolist():
            tokens += row.index(eos) if eos in row else len(row)
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
samples = len(prompts) * a.n
print(json.dumps(dict(name=f"hf generate hh-lengths prompts={len(prompts)} n={a.n} new<={a.new} batch_prompts={a.batch_prompts}",
                      device=a.device, s=round(dt, 2), new_tok_per_s=round(tokens / dt), mean_response=round(tokens / samples, 1),
                      eos_p=round(p, 4))), flush=True)

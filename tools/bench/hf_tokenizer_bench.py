#!/usr/bin/env python3
"""Twin of bench/bench_tokenizer.cpp: HF `tokenizers` encode throughput, single thread, same tokenizer.json
and text. Usage: RAYON_NUM_THREADS=1 python tools/bench/hf_tokenizer_bench.py [TOKENIZER_DIR] [HH.jsonl.gz]"""
import gzip, json, os, sys, time
os.environ.setdefault("RAYON_NUM_THREADS", "1")
from tokenizers import Tokenizer

tok_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/tokenizers/llama3"
data = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/hh-rlhf-harmless-base-test-1800.jsonl.gz"
tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
texts = []
with gzip.open(data, "rt") as f:
    for line in f:
        r = json.loads(line)
        texts += [r["chosen"], r["rejected"]]
mb = sum(len(t.encode()) for t in texts) / 1e6
for name in ["cold", "warm"]:
    t0 = time.perf_counter()
    n = sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts)  # one call per text, one thread
    s = time.perf_counter() - t0
    print(json.dumps({"what": f"hh-rlhf encode ({name}), HF tokenizers", "texts": len(texts), "MB": round(mb, 2),
                      "tokens": n, "s": round(s, 3), "MB_per_s": round(mb / s, 2), "tokens_per_s": round(n / s)}))
cjk = ("漢字かなカナ한글" * 43691)  # 1,048,584 bytes, the C++ twin's string
for name, s in [("1 MB 'a'", "a" * (1 << 20)), ("1 MB spaces", " " * (1 << 20)), ("1 MB newlines", "\n" * (1 << 20)),
                ("1 MB CJK", cjk)]:
    t0 = time.perf_counter()
    n = len(tok.encode(s, add_special_tokens=False).ids)
    print(json.dumps({"what": name + ", HF tokenizers", "tokens": n, "s": round(time.perf_counter() - t0, 3)}))

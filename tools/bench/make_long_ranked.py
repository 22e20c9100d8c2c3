#!/usr/bin/env python3
"""Synthetic ranked-list data with long texts for throughput runs of `hps train`: N prompts × K responses,
each text long enough that data.max_prompt_length / data.max_length truncation makes every sequence full.
Usage: python3 tools/bench/make_long_ranked.py OUT.jsonl [N=64] [K=4] [WORDS=900]"""
import json, random, sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 64
k = int(sys.argv[3]) if len(sys.argv) > 3 else 4
words = int(sys.argv[4]) if len(sys.argv) > 4 else 900
rng = random.Random(0)
vocab = ("the of and to in is you that it he was for on are as with his they at be this have from or one had by "
         "word but not what all were we when your can said there use an each which she do how their if will up "
         "other about out many then them these so some her would make like him into time has look two more write").split()
with open(out, "w") as f:
    for p in range(n):
        text = lambda: " ".join(rng.choice(vocab) for _ in range(words))
        f.write(json.dumps({"prompt": text(), "responses": [text() for _ in range(k)],
                            "rewards": [float(k - j) for j in range(k)]}) + "\n")

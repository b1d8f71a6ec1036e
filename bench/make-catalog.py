#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a synthetic catalog of N items (JSON lines, rankcast's catalog format) for benchmarks.

Names, categories and tags are recombined from the demo catalog's, so the engine's content
model sees realistic text; popularity follows a Zipf-like law (a few items are very popular,
as in a real shop). Deterministic for a given --seed.

usage: bench/make-catalog.py [--items 100000] [--seed 1] [--out build/bench/catalog-100k.jsonl]
"""
import argparse
import json
import os
import random

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--items", type=int, default=100000)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--source", default="web-demo/catalog/demo-catalog.jsonl")
ap.add_argument("--out", default="build/bench/catalog-100k.jsonl")
args = ap.parse_args()

rng = random.Random(args.seed)
source = [json.loads(line) for line in open(args.source) if line.strip()]
words = sorted({w for it in source for w in it["name"].split() if w.isalpha() and len(w) > 2})
categories = sorted({it["category"] for it in source})
tags_by_cat = {}
for it in source:
    tags_by_cat.setdefault(it["category"], set()).update(it.get("tags", []))
tags_by_cat = {c: sorted(t) for c, t in tags_by_cat.items()}

os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
tmp = args.out + ".tmp"
with open(tmp, "w") as f:
    for i in range(args.items):
        cat = rng.choice(categories)
        tags = rng.sample(tags_by_cat[cat], min(3, len(tags_by_cat[cat])))
        name = " ".join(w.title() for w in rng.sample(words, 3))
        item = {
            "id": f"s{i:06d}",
            "name": name,
            "category": cat,
            "tags": tags,
            "price": round(rng.uniform(0.5, 80.0), 2),
            "popularity": int(100000 / (1 + i % 5000) ** 0.9) if i < 5000 else rng.randint(0, 20),
        }
        f.write(json.dumps(item) + "\n")
os.replace(tmp, args.out)
print(f"make-catalog: {args.items} items in {args.out}")

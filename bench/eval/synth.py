#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Synthetic sessions with planted structure, for rankcast-eval quality and scale runs.

Planted structure (so a method that learns it scores better than one that does not):
  - latent tastes: every user mixes two of T tastes; every category belongs to one taste;
  - categories: items belong to one category, are Zipf-popular within it, and carry tags
    (their taste, a style shared across categories, their category's own tag);
  - sequential dependencies: every item has three successors (two in its category, one in
    another category of the same taste); the next item is a successor with probability
    --p-successor, another item of the same category with --p-same-category, otherwise a
    fresh draw from the user's tastes.
Events are mostly views, with clicks, carts and purchases (the events file carries kinds).
Sessions start uniformly over --days days; the last --test-days fraction of days is test.

Output in DIR: catalog.jsonl (rankcast catalog), train.tsv and test.tsv (session-rec:
SessionId, ItemId, Time in seconds), events.jsonl (rankcast events: user, kind, item, ts_ms,
session). Standard library only; deterministic for a given --seed.
"""

import argparse
import bisect
import json
import os
import random
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--sessions", type=int, default=40000)
    ap.add_argument("--tastes", type=int, default=20)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--test-days", type=float, default=0.1)
    ap.add_argument("--mean-length", type=float, default=6.0)
    ap.add_argument("--p-successor", type=float, default=0.45)
    ap.add_argument("--p-same-category", type=float, default=0.30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-events", action="store_true", help="skip events.jsonl")
    ap.add_argument("out", nargs="?", default="/tmp/rankcast-eval/synth")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)

    n_cat = max(a.tastes, min(2000, a.items // 100))
    cat_taste = [c % a.tastes for c in range(n_cat)]
    cats_of_taste = [[c for c in range(n_cat) if cat_taste[c] == t] for t in range(a.tastes)]
    item_cat = [rng.randrange(n_cat) for _ in range(a.items)]
    members = [[] for _ in range(n_cat)]
    for i, c in enumerate(item_cat):
        members[c].append(i)
    # Zipf popularity within a category: cumulative weights for bisect.
    cum = []
    for c in range(n_cat):
        rng.shuffle(members[c])
        acc, row = 0.0, []
        for r in range(len(members[c])):
            acc += 1.0 / (r + 1) ** 1.1
            row.append(acc)
        cum.append(row)
    cat_weight = [rng.paretovariate(1.5) for _ in range(n_cat)]

    def draw_in(c):
        row = cum[c]
        if not row:
            return None
        return members[c][bisect.bisect_left(row, rng.random() * row[-1])]

    def draw_cat(t):
        cs = cats_of_taste[t]
        return rng.choices(cs, weights=[cat_weight[c] for c in cs])[0]

    succ = []
    for i in range(a.items):
        c = item_cat[i]
        s = [draw_in(c), draw_in(c)]
        other = draw_cat(cat_taste[c])
        s.append(draw_in(other))
        succ.append([x for x in s if x is not None and x != i] or [i])

    with open(os.path.join(a.out, "catalog.jsonl"), "w") as f:
        for i in range(a.items):
            c = item_cat[i]
            f.write(json.dumps({"id": f"i{i}", "name": f"Item {i}", "category": f"cat{c}",
                                "tags": [f"taste{cat_taste[c]}", f"style{i % 50}", f"ct{c}"],
                                "price": round(5 + (i * 37 % 200), 2)}) + "\n")

    n_users = max(1, a.sessions // 3)
    user_tastes = [(rng.randrange(a.tastes), rng.randrange(a.tastes), rng.uniform(0.5, 0.9))
                   for _ in range(n_users)]
    t0 = 1_760_000_000
    starts = sorted(rng.uniform(0, a.days * 86400) for _ in range(a.sessions))
    test_from = (1 - a.test_days) * a.days * 86400
    kinds = ["view"] * 73 + ["click"] * 20 + ["cart"] * 5 + ["purchase"] * 2
    tr = open(os.path.join(a.out, "train.tsv"), "w")
    te = open(os.path.join(a.out, "test.tsv"), "w")
    ev = None if a.no_events else open(os.path.join(a.out, "events.jsonl"), "w")
    for f in (tr, te):
        f.write("SessionId\tItemId\tTime\n")
    n_events = 0
    for sid, start in enumerate(starts):
        user = rng.randrange(n_users)
        t1, t2, mix = user_tastes[user]
        length = 2 + int(rng.expovariate(1.0 / max(0.1, a.mean_length - 2)))
        ts = t0 + start
        cur = None
        out = te if start >= test_from else tr
        for _ in range(length):
            r = rng.random()
            if cur is not None and r < a.p_successor:
                nxt = rng.choices(succ[cur], weights=[0.6, 0.25, 0.15][:len(succ[cur])])[0]
            elif cur is not None and r < a.p_successor + a.p_same_category:
                nxt = draw_in(item_cat[cur])
            else:
                nxt = draw_in(draw_cat(t1 if rng.random() < mix else t2))
            if nxt is None or nxt == cur:
                continue
            cur = nxt
            ts += rng.uniform(20, 90)
            out.write(f"{sid}\ti{cur}\t{ts:.0f}\n")
            if ev:
                ev.write(json.dumps({"user": f"u{user}", "session": f"s{sid}",
                                     "kind": rng.choice(kinds), "item": f"i{cur}",
                                     "ts_ms": int(ts * 1000)}) + "\n")
            n_events += 1
    for f in (tr, te) + ((ev,) if ev else ()):
        f.close()
    print(f"{a.out}: {a.items} items, {n_cat} categories, {a.sessions} sessions, "
          f"{n_events} events", file=sys.stderr)


if __name__ == "__main__":
    main()

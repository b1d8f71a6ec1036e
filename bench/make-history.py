#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a synthetic event history for `rankcast --import` (lines ts_ms, user, kind, item,
separated by tabs, sorted by time): users browse sessions of a few to a few dozen events
over a catalog's items (popular items more often, and the next item often close to the
last), about ACTIVE sessions at a time, ending at the present.

    bench/make-history.py --events 2000000 --items 100000 --out FILE
"""
import argparse
import heapq
import random
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--items", type=int, default=100_000, help="ids s000000.. as make-catalog.py")
    ap.add_argument("--active", type=int, default=2000, help="sessions running at once")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    kinds = ["view"] * 70 + ["click"] * 20 + ["cart"] * 7 + ["purchase"] * 3
    # Each running session: (next event time, user, events left, last item).
    now_ms = int(time.time() * 1000)
    span_ms = 7 * 86400 * 1000
    t = now_ms - span_ms
    step_ms = max(1, span_ms * a.active // a.events)
    heap = []
    next_user = 0

    def new_session(at):
        nonlocal next_user
        next_user += 1
        first = min(int(rnd.paretovariate(1.1)) - 1, a.items - 1)
        heapq.heappush(heap, (at + rnd.randint(0, step_ms), next_user, rnd.randint(3, 40), first))

    for _ in range(a.active):
        new_session(t)
    with open(a.out, "w") as f:
        for _ in range(a.events):
            at, user, left, item = heapq.heappop(heap)
            f.write(f"{at}\tu{user}\t{rnd.choice(kinds)}\ts{item:06d}\n")
            if left > 1:
                nxt = item + rnd.randint(-50, 50) if rnd.random() < 0.6 else \
                    min(int(rnd.paretovariate(1.1)) - 1, a.items - 1)
                nxt = min(max(nxt, 0), a.items - 1)
                heapq.heappush(heap, (at + rnd.randint(1, 2 * step_ms), user, left - 1, nxt))
            else:
                new_session(at)


if __name__ == "__main__":
    main()

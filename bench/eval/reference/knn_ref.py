#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Independent reference of rankcast-eval's session-kNN baselines, to check bench/eval/knn.c.

Written from the published definitions, not from the C:
  SKNN    Jannach & Ludewig, "When recurrent neural networks meet the neighborhood for
          session-based recommendation" (RecSys 2017): the current session and a past one
          are item sets; similarity = binary cosine; an item scores the sum of the
          similarities of the k nearest neighbours holding it.
  V-SKNN  Ludewig & Jannach, "Evaluation of session-based recommendation algorithms"
          (UMUAI 2018), session-rec's VMContextKNN with its defaults: the i-th of L events
          of the current session weighs i/L ("div"; a repeated item keeps its last
          position); similarity = sum of the shared items' weights / number of distinct
          items of the current session ("vec"); a neighbour's items count 1/s ("div"
          score), s = how many steps back the newest current item the neighbour holds is.
  STAN    Garg et al., "Sequence and Time Aware Neighborhood for Session-based
          Recommendations" (SIGIR 2019): item weight exp((i - L)/l1); cosine with those
          weights times exp(-(t_now - t_neighbour)/l2); a neighbour's item v counts
          exp(-|p(v) - p*|/l3), p(v) its last position in the neighbour and p* the last
          position there of an item of the current session.
Neighbours are drawn from the `sample` most recent past sessions sharing an item with the
current one (session-rec's sampling="recent"; recency = order of completion).
  Markov, SR, AR  the rule baselines of Ludewig & Jannach (UMUAI 2018): an item that follows
          the last one in the next event (Markov), within `steps` events with a weight of the
          distance i (SR; div = 1/i), or anywhere in the same session, either order (AR),
          adds to that rule; a prediction ranks the last item's rules by weight.

Protocol, the same as rankcast-eval's (bench/eval/README.md): sessions in order of their
first event (train before test at equal times, then load order), sessions of fewer than two
events dropped. Train sessions are learned; in a test session each next item is predicted
from the items so far, then learned; every session is added to the neighbourhood pool when it
ends ("extend"). --targets new (default): consecutive repeats merged, items already in the
session never recommended. --targets all (session-rec's protocol and defaults): nothing
merged, every next event a target, and the session's items are scored like any other (the
last item co-occurs with itself in sessions that hold it twice). Ties: neighbours of equal
similarity, the more recent first; items of equal score, the one that received a score first
(neighbours in rank order, items in their order in the neighbour) first. Scores are IEEE
doubles.

--dump writes one line per method and prediction in rankcast-eval's --dump-ranks format;
--compare reads such a file and counts identical top-20 lists.

Standard library only. Slow (pure Python): meant for splits of a few thousand sessions.
"""

import argparse
import csv
import heapq
import math
import sys

K = 20
TARGETS_ALL = False  # --targets all


def merge_repeats(items):
    if TARGETS_ALL:
        return list(items)
    out = []
    for it in items:
        if not out or out[-1] != it:
            out.append(it)
    return out


def load_prepared(path):
    """[(t0_ms, is_test, load_no, items, times_ms)] from `split<TAB>ts_ms<TAB>item item ...`
    (all events of a line share its time)."""
    sessions = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                continue
            items = merge_repeats(parts[2].split())
            if len(items) >= 2:
                ts = int(parts[1])
                sessions.append((ts, parts[0].startswith("test"), len(sessions), items,
                                 [ts] * len(items)))
    return sessions


def load_sessionrec(path, is_test, sessions):
    """Appends the sessions of a session-rec TSV (SessionId, ItemId, Time in seconds): events
    by session (in order of first appearance), then time, then file order; a merged repeat
    (--targets new) keeps the time of its first event."""
    rows, first_seen = [], {}
    with open(path, encoding="utf-8", newline="") as f:
        for no, row in enumerate(csv.DictReader(f, delimiter="\t")):
            sid = first_seen.setdefault(row["SessionId"], len(first_seen))
            rows.append((sid, int(float(row["Time"]) * 1000), no, row["ItemId"]))
    rows.sort()
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j][0] == rows[i][0]:
            j += 1
        events, items = [], []
        for _, ts, _, it in rows[i:j]:
            if TARGETS_ALL or not items or items[-1] != it:
                items.append(it)
                events.append(ts)
        if len(items) >= 2:
            sessions.append((events[0], is_test, len(sessions), items, events))
        i = j


class Pool:
    """Completed sessions: their items (in order), distinct items, end time, and per item
    the ids of the sessions holding it (ids grow with completion, so larger = more recent)."""

    def __init__(self):
        self.items, self.sets, self.first, self.end_s = [], [], [], []
        self.holding = {}

    def add(self, items, end_s):
        sid = len(self.items)
        self.items.append(items)
        self.sets.append(frozenset(items))
        first = {}
        for it in items:
            first.setdefault(it, len(first))
        self.first.append(first)
        self.end_s.append(end_s)
        for it in first:
            self.holding.setdefault(it, []).append(sid)

    def recent_sharing(self, current, sample):
        """The `sample` most recent sessions holding any item of `current`."""
        found = set()
        for it in set(current):
            found.update(self.holding.get(it, ()))
        if sample and len(found) > sample:
            return heapq.nlargest(sample, found)
        return found

    def shared_in_order(self, sid, current_set):
        """Items of session `sid` that are in `current_set`, in their order in the session."""
        inter = self.sets[sid] & current_set
        return sorted(inter, key=self.first[sid].__getitem__) if len(inter) > 1 else inter


TIES = "touch"


def top_items(scores, current_set):
    """Stable sort by score: ties keep the order in which items were first scored, or with
    --ties id, go by item id (to see how much the tie order moves the metrics)."""
    ranked = [it for it, s in scores.items()
              if s > 0 and (TARGETS_ALL or it not in current_set)]
    if TIES == "id":
        ranked.sort()
    ranked.sort(key=lambda it: -scores[it])
    return ranked[:K]


def nearest(cands, k):
    """The k best (sid, sim), similarity descending, then the more recent session first."""
    cands = [c for c in cands if c[1] > 0]
    cands.sort(key=lambda c: (-c[1], -c[0]))
    return cands[:k]


def rank_sknn(pool, cur, now_s, p):
    cur_set = frozenset(cur)
    cands = []
    for sid in pool.recent_sharing(cur, p.sknn_sample):
        shared = len(pool.sets[sid] & cur_set)
        cands.append((sid, shared / (math.sqrt(len(cur_set)) * math.sqrt(len(pool.sets[sid])))))
    scores = {}
    for sid, sim in nearest(cands, p.sknn_k):
        for it in pool.first[sid]:
            scores[it] = scores.get(it, 0.0) + sim
    return top_items(scores, cur_set)


def rank_vsknn(pool, cur, now_s, p):
    length = len(cur)
    weight = {}
    for i, it in enumerate(cur, start=1):
        weight[it] = i / length  # a repeated item keeps its last position
    cur_set = frozenset(cur)
    cands = []
    for sid in pool.recent_sharing(cur, p.vsknn_sample):
        dot = 0.0
        for it in pool.shared_in_order(sid, cur_set):
            dot += weight[it]
        cands.append((sid, dot / len(weight)))
    scores = {}
    for sid, sim in nearest(cands, p.vsknn_k):
        held = pool.sets[sid]
        step = next(s for s, it in enumerate(reversed(cur), start=1) if it in held)
        w = sim * (1.0 / step)
        for it in pool.first[sid]:
            scores[it] = scores.get(it, 0.0) + w
    return top_items(scores, cur_set)


def rank_stan(pool, cur, now_s, p):
    length = len(cur)
    weight = {}
    for i, it in enumerate(cur, start=1):
        weight[it] = math.exp((i - length) / p.lambda_spw)
    norm = 0.0
    for w in weight.values():
        norm += w * w
    norm = math.sqrt(norm)
    cur_set = frozenset(cur)
    cands = []
    for sid in pool.recent_sharing(cur, p.stan_sample):
        dot = 0.0
        for it in pool.shared_in_order(sid, cur_set):
            dot += weight[it]
        sim = dot / (norm * math.sqrt(len(pool.sets[sid])))
        sim *= math.exp(-(now_s - pool.end_s[sid]) / p.lambda_snh_s)
        cands.append((sid, sim))
    scores = {}
    for sid, sim in nearest(cands, p.stan_k):
        items = pool.items[sid]
        last_pos, p_star = {}, 0
        for pos, it in enumerate(items, start=1):
            last_pos[it] = pos
            if it in cur_set:
                p_star = pos
        for it in pool.first[sid]:
            w = sim * math.exp(-abs(last_pos[it] - p_star) / p.lambda_inh)
            scores[it] = scores.get(it, 0.0) + w
    return top_items(scores, cur_set)


def rank_cooc(pool, cur, now_s, p):
    """Sessions (the most recent 10,000) holding both the last item and the candidate (two
    events: the last item pairs with itself only in sessions that hold it twice)."""
    last = cur[-1]
    holding = pool.holding.get(last, [])
    scores = {}
    for sid in holding[-10000:]:
        twice = pool.items[sid].count(last) >= 2
        for it in pool.first[sid]:
            if it != last or twice:
                scores[it] = scores.get(it, 0.0) + 1.0
    return top_items(scores, frozenset(cur))


SR_WEIGHTS = {
    "linear": lambda i: 1 - 0.1 * i if i <= 100 else 0,
    "same": lambda i: 1.0,
    "div": lambda i: 1 / i,
    "log": lambda i: 1 / math.log10(i + 1.7),
    "quadratic": lambda i: 1 / (i * i),
}


class Rules:
    """Weighted rules item -> following item, learned from completed sessions."""

    def __init__(self, kind, steps=10, weighting="div"):
        self.kind, self.steps, self.weight = kind, steps, SR_WEIGHTS[weighting]
        self.rules = {}

    def _add(self, a, b, w):
        r = self.rules.setdefault(a, {})
        r[b] = r.get(b, 0.0) + w

    def add(self, items):
        for q in range(1, len(items)):
            if self.kind == "markov":
                self._add(items[q - 1], items[q], 1.0)
            elif self.kind == "sr":
                for i in range(1, min(self.steps, q) + 1):
                    self._add(items[q - i], items[q], self.weight(i))
            else:  # ar: every pair of events, the earlier item's rule first
                for p in range(q):
                    self._add(items[p], items[q], 1.0)
                    self._add(items[q], items[p], 1.0)

    def rank(self, cur):
        return top_items(self.rules.get(cur[-1], {}), frozenset(cur))


RANKERS = {"cooc": rank_cooc, "sknn": rank_sknn, "vsknn": rank_vsknn, "stan": rank_stan}
RULES = ("markov", "sr", "ar")


def replay(sessions, methods, p, dump):
    sessions.sort(key=lambda s: (s[0], s[1], s[2]))
    pool = Pool()
    rules = {m: Rules(m, p.sr_steps, p.sr_weighting) for m in methods if m in RULES}
    hits = {m: [0, 0, 0.0] for m in methods}  # HR@10, HR@20, reciprocal rank sum
    n_pred = 0
    for _, is_test, _, items, times in sessions:
        if is_test:
            for t in range(len(items) - 1):
                cur, target = items[: t + 1], items[t + 1]
                n_pred += 1
                for m in methods:
                    top = (rules[m].rank(cur) if m in rules
                           else RANKERS[m](pool, cur, times[t] / 1000.0, p))
                    if target in top:
                        r = top.index(target)
                        hits[m][0] += r < 10
                        hits[m][1] += 1
                        hits[m][2] += 1.0 / (r + 1)
                    if dump:
                        dump.write(f"{m}\t{n_pred}\t{target}\t{' '.join(top)}\n")
        pool.add(items, times[-1] / 1000.0)
        for r in rules.values():
            r.add(items)
    return n_pred, hits


def compare(ours, theirs):
    """Identical top-20 lists per method between two dump files."""
    def read(path):
        d = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                m, no, target, items = line.rstrip("\n").split("\t")
                d[(m, int(no))] = (target, items.split())
        return d

    a, b = read(ours), read(theirs)
    for m in sorted({k[0] for k in a}):
        keys = [k for k in a if k[0] == m]
        same = sum(1 for k in keys if k in b and a[k][1] == b[k][1])
        same_set = sum(1 for k in keys if k in b and set(a[k][1]) == set(b[k][1]))
        print(f"{m}: {len(keys)} lists, identical {same} ({100.0 * same / len(keys):.2f}%), "
              f"same items in another order {same_set - same}", file=sys.stderr)
        shown = 0
        for k in sorted(keys, key=lambda k: k[1]):
            if k in b and a[k][1] != b[k][1] and shown < 3:
                print(f"  first difference at prediction {k[1]}:\n    ref {' '.join(a[k][1])}\n"
                      f"    C   {' '.join(b[k][1])}", file=sys.stderr)
                shown += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--prepared", help="split<TAB>ts_ms<TAB>items (prepare.py)")
    src.add_argument("--train", help="session-rec TSV train file (with --test)")
    ap.add_argument("--test")
    ap.add_argument("--methods", default="sknn,vsknn,stan",
                    help="of cooc,sknn,vsknn,stan,markov,sr,ar")
    ap.add_argument("--sknn", default="100,500", help="k,sample (100,500)")
    ap.add_argument("--vsknn", default="100,1000", help="k,sample (100,1000)")
    ap.add_argument("--stan", default="100,5000,1.02,5,2.05",
                    help="k,sample,lambda_spw,lambda_snh_days,lambda_inh (100,5000,1.02,5,2.05)")
    ap.add_argument("--sr", default="10,div", help="steps,weighting (10,div)")
    ap.add_argument("--targets", choices=["new", "all"], default="new",
                    help="new: repeats merged, session items never listed; all: session-rec's "
                         "protocol (nothing merged, session items scored)")
    ap.add_argument("--ties", choices=["touch", "id"], default="touch",
                    help="items of equal score: first scored first (as rankcast-eval), or by id")
    ap.add_argument("--dump", help="write the top 20 lists here")
    ap.add_argument("--compare", help="a rankcast-eval --dump-ranks file to compare with")
    a = ap.parse_args()

    global TIES, TARGETS_ALL
    TIES = a.ties
    TARGETS_ALL = a.targets == "all"
    p = argparse.Namespace()
    p.sknn_k, p.sknn_sample = (int(x) for x in a.sknn.split(","))
    p.vsknn_k, p.vsknn_sample = (int(x) for x in a.vsknn.split(","))
    k, sample, spw, snh, inh = a.stan.split(",")
    p.stan_k, p.stan_sample = int(k), int(sample)
    p.lambda_spw, p.lambda_snh_s, p.lambda_inh = float(spw), float(snh) * 86400.0, float(inh)
    steps, p.sr_weighting = a.sr.split(",")
    p.sr_steps = int(steps)

    if a.prepared:
        sessions = load_prepared(a.prepared)
    else:
        if not a.test:
            ap.error("--train needs --test")
        sessions = []
        load_sessionrec(a.train, False, sessions)
        load_sessionrec(a.test, True, sessions)
    methods = a.methods.split(",")
    dump = open(a.dump, "w", encoding="utf-8") if a.dump else None
    n_pred, hits = replay(sessions, methods, p, dump)
    if dump:
        dump.close()
    print(f"{len(sessions)} sessions, {n_pred} predictions")
    print("| method | HR@10 | HR@20 | MRR@20 |\n|---|---|---|---|")
    for m in methods:
        h10, h20, rr = hits[m]
        n = max(n_pred, 1)
        print(f"| {m} | {h10 / n:.4f} | {h20 / n:.4f} | {rr / n:.4f} |")
    if a.compare and a.dump:
        compare(a.dump, a.compare)


if __name__ == "__main__":
    main()

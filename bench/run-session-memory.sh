#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Memory per live session, measured on a running server (RSS from /proc), not from struct
# sizes. The global models are saturated first, so that what grows is the sessions': a
# 1,000-item catalog (CATALOG_ITEMS) gets WARM_CONNS [20] users sending 40 events/s for 30 s
# (24,000 events: every item's co-visitation list fills), then CONNECTIONS [4000] new users
# connect, subscribe (k = 10) and send 1 event/s for 35 s. Reported per connection: RSS after
# the first list (a fresh session) and at the end (each session about 35 events old, its
# profile in the in-memory store). RUNS [3] fresh servers; medians. Writes
# bench/results/session-memory-<stamp>.md. Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER_BIN=${SERVER_BIN:-build/server/rankcast}
LOADGEN_BIN=${LOADGEN_BIN:-build/bench/rankcast-loadgen}
RESULTS_DIR=${RESULTS_DIR:-bench/results}
PORT=${PORT:-18772}
CONNECTIONS=${CONNECTIONS:-4000}
WARM_CONNS=${WARM_CONNS:-20}
CATALOG_ITEMS=${CATALOG_ITEMS:-1000}
RUNS=${RUNS:-3}
[[ -x $SERVER_BIN && -x $LOADGEN_BIN ]] || { echo "run-session-memory: build first" >&2; exit 1; }
mkdir -p "$RESULTS_DIR"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$RESULTS_DIR/session-memory-$stamp.md"
work=$(mktemp -d)
pid=""
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
catalog=$work/catalog.jsonl
python3 bench/make-catalog.py --items "$CATALOG_ITEMS" --out "$catalog" >/dev/null

for run in $(seq 1 "$RUNS"); do
    "$SERVER_BIN" --port "$PORT" --listen 127.0.0.1 --anonymous --anonymous-ids chosen --max-conns-per-ip 0 \
        --catalog "$catalog" --log-level warn >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
    "$LOADGEN_BIN" --port "$PORT" --connections "$WARM_CONNS" --rate 40 --warmup 2 --duration 30 \
        --catalog "$catalog" --seed "$run" --server-pid "$pid" --json-out "$work/warm$run.json" >/dev/null
    sleep 2
    "$LOADGEN_BIN" --port "$PORT" --connections "$CONNECTIONS" --rate 1 --warmup 5 --duration 30 \
        --catalog "$catalog" --seed "$((run + 100))" --server-pid "$pid" \
        --json-out "$work/run$run.json" >/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
done

python3 - "$work" "$RUNS" "$out" "$stamp" <<'PY'
import json, os, statistics, sys
work, runs, out, stamp = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = []
for i in range(1, runs + 1):
    r = json.load(open(f"{work}/run{i}.json"))
    s, n = r["server"], r["connections"]["open"]
    rows.append({"open": n, "events": r["events"]["sent_including_warmup"],
                 "fresh": (s["rss_kb_open"] - s["rss_kb_before"]) / n,
                 "active": (s["rss_kb_end"] - s["rss_kb_before"]) / n})
med = {k: statistics.median(r[k] for r in rows) for k in ("fresh", "active")}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
with open(out, "w") as f:
    f.write(f"# Memory per live session, {stamp}\n\n")
    f.write(f"Machine: {os.cpu_count()} CPUs, {cpu}. Command: `bench/run-session-memory.sh`.\n\n")
    f.write("| run | connections | events | KB per connection, fresh (after the first list) | KB per connection, active (~35 events each) |\n|---|---|---|---|---|\n")
    for i, r in enumerate(rows, 1):
        f.write(f"| {i} | {r['open']} | {r['events']} | {r['fresh']:.2f} | {r['active']:.2f} |\n")
    f.write(f"| **median** | | | **{med['fresh']:.2f}** | **{med['active']:.2f}** |\n")
print(open(out).read())
PY

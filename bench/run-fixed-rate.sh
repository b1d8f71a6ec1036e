#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The fixed cost of one event: rankcast (whole lists and compact lists) and the Node `ws` peer
# side by side at fixed rates below saturation (RATES events/s over CONNECTIONS connections,
# k = K), server pinned to CPU 0 and the generator to CPU 1. Per cell, medians of RUNS fresh
# servers: server CPU µs per event (/proc/PID/stat over the measured window), WebSocket bytes
# per event both ways (counted by the generator), event→list p50/p99/p99.9, events with no
# list. BASE_BIN=<other build> adds that build's two rankcast rows (before/after). Kinds
# alternate within each rate, so all see the same stretch of machine noise. Builds nothing.
# Writes bench/results/fixed-rate-<stamp>.md. Usage: bench/run-fixed-rate.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CATALOG=${CATALOG:-web-demo/catalog/demo-catalog.jsonl}
source bench/env.sh
PORT=${PORT:-18790}
RUNS=${RUNS:-3}
RATES=${RATES:-1000 5000 20000}
CONNECTIONS=${CONNECTIONS:-1000}
K=${K:-20}
WARMUP_S=${WARMUP_S:-5}
DURATION_S=${DURATION_S:-10}
KINDS=${KINDS:-rankcast rankcast-compact ws}
BASE_BIN=${BASE_BIN:-}
SERVER_CPU=${SERVER_CPU:-0} LOADGEN_CPU=${LOADGEN_CPU:-1}

bench_ready run-fixed-rate
command -v taskset >/dev/null || { echo "run-fixed-rate: taskset is needed (util-linux)" >&2; exit 1; }
if [[ $KINDS == *ws* ]]; then
    command -v node >/dev/null || { echo "run-fixed-rate: node is needed for the ws peer" >&2; exit 1; }
    [[ -d bench/peers/node_modules ]] || (cd bench/peers && npm ci --no-audit --no-fund --loglevel=error)
fi
kinds=($KINDS)
if [[ -n $BASE_BIN ]]; then
    [[ -x $BASE_BIN ]] || { echo "run-fixed-rate: no binary at BASE_BIN=$BASE_BIN" >&2; exit 1; }
    kinds=(base base-compact "${kinds[@]}")
fi
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { echo "run-fixed-rate: port $PORT is taken" >&2; exit 1; }
bench_begin fixed-rate

# one KIND RATE JSON: a fresh server of that kind on CPU SERVER_CPU, the generator on
# LOADGEN_CPU at RATE events/s in all, its report into JSON.
one() {
    local kind=$1 rate=$2 bin=$SERVER_BIN extra=()
    [[ $kind == base* ]] && bin=$BASE_BIN
    [[ $kind == *-compact ]] && extra=(--compact)
    if [[ $kind == ws ]]; then
        taskset -c "$SERVER_CPU" node bench/peers/ws-peer.mjs --port "$PORT" --catalog "$CATALOG" \
            >/dev/null 2>&1 &
    else
        taskset -c "$SERVER_CPU" "$bin" --port "$PORT" --listen 127.0.0.1 --anonymous \
            --anonymous-ids chosen --max-conns-per-ip 0 --catalog "$CATALOG" --log-level error \
            >/dev/null 2>&1 &
    fi
    pid=$!
    bench_wait_port "$PORT" || true
    local per_conn
    per_conn=$(python3 -c "print($rate / $CONNECTIONS)")
    timeout $((WARMUP_S + DURATION_S + 90)) taskset -c "$LOADGEN_CPU" "$LOADGEN_BIN" \
        --port "$PORT" -n "$CONNECTIONS" --sources 4 --rate "$per_conn" --k "$K" "${extra[@]}" \
        --warmup "$WARMUP_S" --duration "$DURATION_S" --catalog "$CATALOG" --server-pid "$pid" \
        --json-out "$3" >/dev/null 2>&1 || true
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    pid=""
}

for run in $(seq 1 "$RUNS"); do
    for rate in $RATES; do
        for kind in "${kinds[@]}"; do
            one "$kind" "$rate" "$work/$kind-$rate-$run.json"
        done
        echo "run-fixed-rate: run $run of $RUNS, $rate events/s done" >&2
    done
done

python3 - "$work" "$RUNS" "$RATES" "$out" "$stamp" "$CONNECTIONS" "$K" "$WARMUP_S" "$DURATION_S" \
    "$(realpath "$SERVER_BIN")" "$BASE_BIN" "${kinds[@]}" <<'PY'
import json, os, statistics, subprocess, sys
work, runs, rates, out, stamp, conns, k, warm, dur, sbin, bbin = sys.argv[1:12]
kinds = sys.argv[12:]
runs, rates = int(runs), [int(r) for r in rates.split()]

def figures(path):
    try:
        r = json.load(open(path))
    except (OSError, ValueError):
        return None
    e, w = r["events"], r.get("wire") or {}
    if not e["acked"] or not r.get("server"):
        return None
    lat = r["latency_ms"]
    return {"cpu": r["server"]["cpu_s_measured"] / e["acked"] * 1e6,
            "rate": r["rate"]["achieved_events_per_s"],
            "in": w.get("in_bytes_per_event", 0), "out": w.get("out_bytes_per_event", 0),
            "p50": lat["p50"], "p99": lat["p99"], "p999": lat["p999"],
            "nolist": 100 * (1 - e["pushes_matched_ratio"]),
            "other": r["machine"]["other_cores_measured"]}

label = {"rankcast": "rankcast, whole lists", "rankcast-compact": "rankcast, compact lists",
         "base": "base, whole lists", "base-compact": "base, compact lists", "ws": "ws peer (whole lists)"}
rows, runs_rows, others = [], [], []
for rate in rates:
    for kind in kinds:
        fs = [f for f in (figures(f"{work}/{kind}-{rate}-{i}.json") for i in range(1, runs + 1)) if f]
        if not fs:
            rows.append(f"| {rate:,} | {label.get(kind, kind)} | no run acked an event | | | | | | |")
            continue
        m = {key: statistics.median(f[key] for f in fs) for key in fs[0]}
        others += [f["other"] for f in fs]
        rows.append(f"| {rate:,} | {label.get(kind, kind)} | {m['rate']:,.0f} | **{m['cpu']:.1f}** | "
                    f"{m['in']:,.0f} / {m['out']:,.0f} | {m['p50']:.3f} | {m['p99']:.3f} | "
                    f"{m['p999']:.3f} | {m['nolist']:.2f} | {len(fs)} |")
        runs_rows.append(f"| {rate:,} | {kind} | " + " · ".join(f"{f['cpu']:.1f}" for f in fs) + " | "
                         + " · ".join(f"{f['p99']:.3f}" for f in fs) + " |")
# With a base build: each run of a kind against the base's run of the same round and rate, the
# two back to back; the median of those ratios is steadier than the ratio of the medians.
paired = []
for rate in rates:
    for kind, base in (("rankcast", "base"), ("rankcast-compact", "base-compact")):
        if kind not in kinds or base not in kinds:
            continue
        d = []
        for i in range(1, runs + 1):
            x, y = figures(f"{work}/{base}-{rate}-{i}.json"), figures(f"{work}/{kind}-{rate}-{i}.json")
            if x and y and x["cpu"] > 0:
                d.append(100 * (y["cpu"] / x["cpu"] - 1))
        if d:
            paired.append(f"| {rate:,} | {label[kind]} | {statistics.median(d):+.1f} % | "
                          + " · ".join(f"{v:+.1f}" for v in d) + " |")
cpu = subprocess.run(["sed", "-n", "s/^model name[[:space:]]*: //p", "/proc/cpuinfo"],
                     capture_output=True, text=True).stdout.splitlines()[0]
commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
text = [f"# Fixed cost per event, {stamp}", "",
        f"Machine: {os.cpu_count()} CPUs, {cpu}, Linux {os.uname().release}, commit {commit}; "
        f"other processes' CPU while measuring, median {statistics.median(others or [0]):.2f} cores. "
        f"Server on CPU 0, generator on CPU 1 (taskset); {conns} connections, one subscription "
        f"k = {k} each, demo catalog, events on random catalog items (view/click/cart in turn); "
        f"{warm} s warmup + {dur} s measured; a fresh server per run, kinds alternated within each rate; "
        f"medians of {runs} runs.", "",
        f"- rankcast: `{sbin}`" + (f"; base: `{bbin}`" if bbin else ""), "",
        "| events/s | server | achieved/s | server CPU µs/event | WebSocket bytes/event in / out | "
        "p50 ms | p99 ms | p99.9 ms | events with no list % | runs |",
        "|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        "Bytes are the generator's: WebSocket frames with their headers, both directions, over the "
        "measured window, per event sent (\"in\" = server to client: acks and lists; no TCP/IP "
        "headers). CPU is user + system time of the server process over the measured window, per "
        "acknowledged event.", "",
        "Each run (CPU µs/event · p99 ms):", "", "| events/s | server | CPU µs/event | p99 ms |",
        "|---|---|---|---|", *runs_rows]
if paired:
    text += ["", "Server CPU per event against the base build, run by run (each next to the base's run "
             "of the same round):", "", "| events/s | server | median | each run |", "|---|---|---|---|",
             *paired]
open(out, "w").write("\n".join(text) + "\n")
print("\n".join(text))
PY

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Several event loops in one process (--loops): what an event costs as loops are added, at a
# fixed rate below saturation. Each CONFIGS entry is LOOPS:CPUS, the server's loop count and
# the CPUs it is pinned to (taskset); the generator runs on LOADGEN_CPU. "1:0 2:0" compares
# one loop with two loops on the same core: the machinery's own cost (relays, read sections,
# the models' writer thread applying every change to both copies), free of any gain from a
# second core. LOADGEN_CPU=0,1 with CONFIGS="1:0,1 2:0,1" and a high RATE is the sustained
# rate: one loop against two on the machine's two cores, shared with the generator. Per cell, medians of RUNS fresh servers: server CPU µs per event (all its
# threads), the writer's share of it (rankcast_models_apply_*_seconds_total from /metrics
# at the end of the run, per event received), event->list p50/p99. Configs alternate within
# each run. Builds nothing. Writes bench/results/loops-<stamp>.md.
# Usage: RUNS=3 CONFIGS="1:0 2:0" bench/run-loops.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CATALOG=${CATALOG:-web-demo/catalog/demo-catalog.jsonl}
source bench/env.sh
PORT=${PORT:-18791}
RUNS=${RUNS:-3}
RATE=${RATE:-5000}
CONFIGS=${CONFIGS:-1:0 2:0}
CONNECTIONS=${CONNECTIONS:-1000}
K=${K:-20}
WARMUP_S=${WARMUP_S:-5}
DURATION_S=${DURATION_S:-10}
LOADGEN_CPU=${LOADGEN_CPU:-1}

bench_ready run-loops
command -v taskset >/dev/null || { echo "run-loops: taskset is needed (util-linux)" >&2; exit 1; }
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { echo "run-loops: port $PORT is taken" >&2; exit 1; }
bench_begin loops

# one LOOPS CPUS PREFIX: a fresh server, the generator's report in PREFIX.json, the server's
# /metrics at the end in PREFIX.metrics.
one() {
    local loops=$1 cpus=$2
    taskset -c "$cpus" "$SERVER_BIN" --port "$PORT" --listen 127.0.0.1 --anonymous \
        --anonymous-ids chosen --max-conns-per-ip 0 --catalog "$CATALOG" --log-level error \
        --loops "$loops" >/dev/null 2>&1 &
    pid=$!
    bench_wait_port "$PORT" || true
    local per_conn
    per_conn=$(python3 -c "print($RATE / $CONNECTIONS)")
    timeout $((WARMUP_S + DURATION_S + 90)) taskset -c "$LOADGEN_CPU" "$LOADGEN_BIN" \
        --port "$PORT" -n "$CONNECTIONS" --sources 4 --rate "$per_conn" --k "$K" \
        --warmup "$WARMUP_S" --duration "$DURATION_S" --catalog "$CATALOG" --server-pid "$pid" \
        --json-out "$3.json" >/dev/null 2>&1 || true
    curl -s "http://127.0.0.1:$PORT/metrics" >"$3.metrics" || true
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    pid=""
}

configs=($CONFIGS)
for run in $(seq 1 "$RUNS"); do
    for c in "${configs[@]}"; do
        one "${c%%:*}" "${c#*:}" "$work/$c-$run"
    done
    echo "run-loops: run $run of $RUNS done" >&2
done

python3 - "$work" "$RUNS" "$RATE" "$out" "$stamp" "$CONNECTIONS" "$K" "$WARMUP_S" "$DURATION_S" \
    "$LOADGEN_CPU" "$(realpath "$SERVER_BIN")" "${configs[@]}" <<'PY'
import json, os, re, statistics, subprocess, sys
work, runs, rate, out, stamp, conns, k, warm, dur, gcpu, sbin = sys.argv[1:12]
configs = sys.argv[12:]
runs = int(runs)

def metric(text, name):
    total = 0.0
    for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M):
        total += float(m.group(1))
    return total

def figures(prefix):
    try:
        r = json.load(open(prefix + ".json"))
        text = open(prefix + ".metrics").read()
    except (OSError, ValueError):
        return None
    e = r["events"]
    if not e["acked"] or not r.get("server"):
        return None
    received = metric(text, "rankcast_events_received_total")
    lat = r["latency_ms"]
    return {"cpu": r["server"]["cpu_s_measured"] / e["acked"] * 1e6,
            "writer": metric(text, "rankcast_models_apply_seconds_total") / received * 1e6 if received else 0,
            "writer_ev": metric(text, "rankcast_models_apply_event_seconds_total") / received * 1e6 if received else 0,
            "rate": r["rate"]["achieved_events_per_s"], "p50": lat["p50"], "p99": lat["p99"],
            "acked": 100 * e["acked"] / e["sent"] if e["sent"] else 0, "errored": e["errored"],
            "nolist": 100 * (1 - e["pushes_matched_ratio"]), "other": r["machine"]["other_cores_measured"]}

rows, each, others = [], [], []
for c in configs:
    fs = [f for f in (figures(f"{work}/{c}-{i}") for i in range(1, runs + 1)) if f]
    loops, cpus = c.split(":")
    if not fs:
        rows.append(f"| {loops} | {cpus} | no run acked an event | | | | | | | | |")
        continue
    m = {key: statistics.median(f[key] for f in fs) for key in fs[0]}
    others += [f["other"] for f in fs]
    rows.append(f"| {loops} | {cpus} | {m['rate']:,.0f} | {m['acked']:.2f} | {m['errored']:.0f} | "
                f"**{m['cpu']:.1f}** | {m['writer']:.1f} | {m['writer_ev']:.1f} | {m['p50']:.3f} | "
                f"{m['p99']:.3f} | {m['nolist']:.2f} | {len(fs)} |")
    each.append(f"| {loops} | {cpus} | " + " · ".join(f"{f['cpu']:.1f}" for f in fs) + " |")
cpu = subprocess.run(["sed", "-n", "s/^model name[[:space:]]*: //p", "/proc/cpuinfo"],
                     capture_output=True, text=True).stdout.splitlines()[0]
commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
text = [f"# Cost per event with several event loops, {stamp}", "",
        f"Machine: {os.cpu_count()} CPUs, {cpu}, Linux {os.uname().release}, commit {commit}; "
        f"other processes' CPU while measuring, median {statistics.median(others or [0]):.2f} cores. "
        f"{int(rate):,} events/s over {conns} connections, one subscription k = {k} each, demo catalog, "
        f"random items; generator on CPU {gcpu}; {warm} s warmup + {dur} s measured; a fresh server "
        f"per run, configurations alternated; medians of {runs} runs. Server: `{sbin}`.", "",
        "| loops | server CPUs | achieved/s | acked % | errors | server CPU µs/event (all threads) | "
        "of which the models' writer | writer, events' model halves | p50 ms | p99 ms | "
        "events with no list % | runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        "The writer's figures are from /metrics at the end of each run (warmup included), per event "
        "received; it applies every change to both copies of the models, and with one loop there is "
        "no writer (each change is applied once, on the loop: its cost is in the loop's).", "",
        "Each run (CPU µs/event):", "", "| loops | CPUs | runs |", "|---|---|---|", *each]
open(out, "w").write("\n".join(text) + "\n")
print("\n".join(text))
PY

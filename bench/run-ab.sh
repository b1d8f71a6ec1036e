#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two server builds side by side: server CPU per event and the engine's time per event
# (took_us), PAIRS [6] times, A then B, each run on a fresh server: CONNECTIONS [1000] x RATE
# [8] events/s over the 100k-item catalog, WARMUP_S [25] s (the models fill) then DURATION_S
# [8] s measured. Prints each run and the medians of the differences within pairs: this
# machine's speed drifts, so only alternated pairs are worth comparing. Usage: bench/run-ab.sh BIN_A BIN_B (copy a build
# aside first). Writes bench/results/ab-<stamp>.md. Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/env.sh
PORT=${PORT:-18760}
PAIRS=${PAIRS:-6}
CONNECTIONS=${CONNECTIONS:-1000}
RATE=${RATE:-8}
WARMUP_S=${WARMUP_S:-25}
DURATION_S=${DURATION_S:-8}
[[ $# == 2 && -x $1 && -x $2 ]] || { echo "usage: bench/run-ab.sh BIN_A BIN_B" >&2; exit 1; }
SERVER_BIN=$1 # for bench_ready, which also checks the generator and writes the catalog
bench_ready run-ab
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { echo "run-ab: port $PORT is taken" >&2; exit 1; }
a=$(realpath "$1") b=$(realpath "$2")
bench_begin ab

# one BIN JSON: a fresh server under the load; the generator's JSON result into JSON
one() {
    "$1" --port "$PORT" --listen 127.0.0.1 --anonymous --anonymous-ids chosen --max-conns-per-ip 0 --catalog "$CATALOG" \
        --log-level warn >/dev/null 2>&1 &
    pid=$!
    bench_wait_port "$PORT" || true
    timeout $((WARMUP_S + DURATION_S + 120)) "$LOADGEN_BIN" --port "$PORT" -n "$CONNECTIONS" \
        --sources 4 --rate "$RATE" --warmup "$WARMUP_S" --duration "$DURATION_S" \
        --catalog "$CATALOG" --server-pid "$pid" --json-out "$2" >/dev/null 2>&1 || true
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    pid=""
}

for i in $(seq 1 "$PAIRS"); do
    one "$a" "$work/a$i.json"
    one "$b" "$work/b$i.json"
    echo "run-ab: pair $i of $PAIRS done" >&2
done
python3 - "$work" "$PAIRS" "$a" "$b" "$out" "$stamp" "$CONNECTIONS" "$RATE" <<'PY'
import json, os, statistics, subprocess, sys
work, pairs, a, b, out, stamp, conns, rate = sys.argv[1:9]
pairs = int(pairs)

def figures(path):
    r = json.load(open(path))
    acked = r["events"]["acked"]
    if not acked:
        return None
    return (r["server"]["cpu_s_measured"] / acked * 1e6, r["server_took_ms"]["p50"] * 1000,
            r["latency_ms"]["p50"], r["latency_ms"]["p99"])

rows, fa, fb = [], [], []
for i in range(1, pairs + 1):
    x, y = figures(f"{work}/a{i}.json"), figures(f"{work}/b{i}.json")
    if x is None or y is None:
        continue
    fa.append(x)
    fb.append(y)
    rows.append(f"| {i} | {x[0]:.1f} | {y[0]:.1f} | {x[1]:.0f} | {y[1]:.0f} | "
                f"{x[2]:.3f} / {x[3]:.3f} | {y[2]:.3f} / {y[3]:.3f} |")
if not fa:
    sys.exit("run-ab: no run acked an event")
med = lambda f, k: statistics.median(v[k] for v in f)
better = sum(1 for x, y in zip(fa, fb) if y[0] < x[0])
# Pairs run back to back share the machine's speed of the moment: their differences are
# steadier than the two columns' medians.
pair_cpu = statistics.median(100 * (y[0] / x[0] - 1) for x, y in zip(fa, fb))
pair_took = statistics.median(y[1] - x[1] for x, y in zip(fa, fb))
cpu = subprocess.run(["sed", "-n", "s/^model name[[:space:]]*: //p", "/proc/cpuinfo"],
                     capture_output=True, text=True).stdout.splitlines()[0]
text = [f"# Two builds side by side, {stamp}", "",
        f"Machine: {os.cpu_count()} CPUs, {cpu}, Linux {os.uname().release}; load average "
        f"{open('/proc/loadavg').read().split()[0]}. {conns} connections x {rate} events/s, 100k-item "
        f"catalog, a fresh server per run, A then B in each pair.", "",
        f"- A: `{a}`", f"- B: `{b}`", "",
        "| pair | A CPU µs/event | B CPU µs/event | A took p50 µs | B took p50 µs | A client p50 / p99 ms | B client p50 / p99 ms |",
        "|---|---|---|---|---|---|---|", *rows,
        f"| **median** | **{med(fa, 0):.1f}** | **{med(fb, 0):.1f}** | **{med(fa, 1):.0f}** | "
        f"**{med(fb, 1):.0f}** | {med(fa, 2):.3f} / {med(fa, 3):.3f} | {med(fb, 2):.3f} / {med(fb, 3):.3f} |",
        "", f"B against A within each pair, median: {pair_cpu:+.1f} % CPU per event, "
        f"{pair_took:+.1f} µs took p50. B used less CPU per event in {better} of {len(fa)} pairs."]
open(out, "w").write("\n".join(text) + "\n")
print("\n".join(text))
PY

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Heap allocations per event in steady state, counted on a live server with uprobes on
# glibc's malloc, calloc and realloc (perf; needs root). The models are saturated first, as
# in run-session-memory.sh (a CATALOG_ITEMS [1000]-item catalog, WARM_CONNS [20] users at 40
# events/s for WARM_S [30] s: every co-visitation list full), so that what is counted is the
# event path, not the models growing. Then CONNECTIONS [1000] users send RATE [5] events/s
# each and the calls are counted for COUNT_S [3] s, twice: with the default consent (profile
# writes through the in-memory store: when a session's delta is full, with these random
# events every few events) and with --consent-default false (no profile writes); the stacks
# of the same calls name their first caller outside libc, and the server's own counter gives
# the profile writes in the window. Writes bench/results/allocs-<stamp>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER_BIN=${SERVER_BIN:-build/server/rankcast}
LOADGEN_BIN=${LOADGEN_BIN:-build/bench/rankcast-loadgen}
RESULTS_DIR=${RESULTS_DIR:-bench/results}
PORT=${PORT:-18774}
CATALOG_ITEMS=${CATALOG_ITEMS:-1000}
WARM_CONNS=${WARM_CONNS:-20}
WARM_S=${WARM_S:-30}
CONNECTIONS=${CONNECTIONS:-1000}
RATE=${RATE:-5}
COUNT_S=${COUNT_S:-3}
LIBC=${LIBC:-$(ldd "$SERVER_BIN" | awk '/libc.so.6/ {print $3}')}
[[ -x $SERVER_BIN && -x $LOADGEN_BIN ]] || { echo "run-allocs: build first" >&2; exit 1; }
command -v perf >/dev/null || { echo "run-allocs: perf is missing (scripts/setup installs linux-perf)" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "run-allocs: uprobes need root" >&2; exit 1; }
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { echo "run-allocs: port $PORT is taken" >&2; exit 1; }
mkdir -p "$RESULTS_DIR"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$RESULTS_DIR/allocs-$stamp.md"
work=$(mktemp -d)
pid=""
probes=()
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null
    for p in "${probes[@]}"; do perf probe -q -d "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
for fn in malloc calloc realloc; do
    perf probe -q -x "$LIBC" -a "rc_alloc_$fn=$fn" >/dev/null
    probes+=("probe_libc:rc_alloc_$fn")
done
events=$(IFS=,; echo "${probes[*]}")
python3 bench/make-catalog.py --items "$CATALOG_ITEMS" --out "$work/catalog.jsonl" >/dev/null

profile_writes() {
    curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^rankcast_profile_updates_written_total/ {print $2}'
}

count() { # $1: label, rest: extra server flags
    local label=$1
    shift
    "$SERVER_BIN" --port "$PORT" --listen 127.0.0.1 --anonymous --anonymous-ids chosen --max-conns-per-ip 0 \
        --catalog "$work/catalog.jsonl" --log-level warn "$@" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
    timeout $((WARM_S + 60)) "$LOADGEN_BIN" --port "$PORT" --connections "$WARM_CONNS" --rate 40 \
        --warmup 2 --duration "$WARM_S" --catalog "$work/catalog.jsonl" >/dev/null 2>&1
    timeout 120 "$LOADGEN_BIN" --port "$PORT" --connections "$CONNECTIONS" --rate "$RATE" \
        --warmup 4 --duration $((COUNT_S + 6)) --catalog "$work/catalog.jsonl" --seed 7 \
        --json-out "$work/$label.json" >/dev/null 2>&1 &
    local lg=$!
    sleep 7 # connections open, warm-up over
    # The same window twice: counted, and every call's stack (for its first caller outside libc).
    perf record -q -e "$events" --call-graph dwarf -p "$pid" -o "$work/$label.data" \
        -- sleep "$COUNT_S" >/dev/null 2>&1 &
    local rec=$!
    local before
    before=$(profile_writes)
    perf stat -x, -e "$events" -p "$pid" -- sleep "$COUNT_S" 2>"$work/$label.stat" >/dev/null
    echo $(($(profile_writes) - before)) >"$work/$label.writes"
    wait "$rec" || true
    perf script -i "$work/$label.data" -F ip,sym,dso 2>/dev/null >"$work/$label.stacks" || true
    wait "$lg" || true
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
}
count default
count noprofile --consent-default false

python3 - "$work" "$out" "$stamp" "$COUNT_S" "$CONNECTIONS" "$RATE" "$CATALOG_ITEMS" <<'PY'
import json, os, sys
work, out, stamp, secs, conns, rate, items = sys.argv[1:8]
rows = []
for label, what in (("default", "default (profile writes to the in-memory store)"),
                    ("noprofile", "`--consent-default false` (no profile writes)")):
    calls = {}
    for line in open(f"{work}/{label}.stat"):
        f = line.strip().split(",")
        if len(f) > 2 and f[2].startswith("probe_libc:rc_alloc_"):
            calls[f[2].split("rc_alloc_")[1]] = int(f[0]) if f[0].isdigit() else 0
    r = json.load(open(f"{work}/{label}.json"))
    ev_per_s = r["rate"]["achieved_events_per_s"]
    n = ev_per_s * float(secs)
    # Each sample is a block of frames ("address symbol (object)"), innermost first, the
    # probed function itself at the top; name it by its first caller outside libc.
    callers, stack = {}, []
    path = f"{work}/{label}.stacks"
    lines = open(path).read().splitlines() if os.path.exists(path) else []
    for line in lines + [""]:
        if line.strip():
            stack.append(line.strip().split(" ", 1)[-1])
            continue
        own = [fr.split(" (")[0] for fr in stack[1:]
               if "libc.so" not in fr and not fr.startswith("[unknown]")]
        if stack:
            callers[own[0] if own else "?"] = callers.get(own[0] if own else "?", 0) + 1
        stack = []
    total = sum(callers.values())
    top = sorted(callers.items(), key=lambda kv: -kv[1])[:4]
    where = ", ".join(f"`{k}` {100 * v / total:.0f} %" for k, v in top) if total else "none"
    writes = int(open(f"{work}/{label}.writes").read().strip() or 0)
    rows.append((what, {k: v / n for k, v in calls.items()}, writes / n, ev_per_s, where))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
with open(out, "w") as f:
    f.write(f"# Heap allocations per event, {stamp}\n\n")
    f.write(f"Machine: {os.cpu_count()} CPUs, {cpu}, Linux {os.uname().release}. Models saturated on a "
            f"{items}-item catalog, then {conns} users at {rate} events/s each; glibc calls counted "
            f"with uprobes for {secs} s.\n\n")
    f.write("| server | malloc / event | calloc / event | realloc / event | profile writes / event | events/s | first caller outside libc (share of the calls) |\n|---|---|---|---|---|---|---|\n")
    for what, c, w, evs, where in rows:
        f.write(f"| {what} | {c.get('malloc', 0):.3f} | {c.get('calloc', 0):.3f} | {c.get('realloc', 0):.3f} | {w:.3f} | {evs:,.0f} | {where} |\n")
print(open(out).read())
PY

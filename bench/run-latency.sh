#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Latency benchmark of one rankcast node: 1,000 connections x 5 events/s, 20 s measured after
# a 5 s warmup, from 4 source addresses, RUNS times against a fresh server each time.
# Builds nothing: build first (cmake --build build). Results go to bench/results/.
set -euo pipefail

cd "$(dirname "$0")/.."

SERVER_BIN=${SERVER_BIN:-build/server/rankcast}
LOADGEN_BIN=${LOADGEN_BIN:-build/bench/rankcast-loadgen}
CATALOG=${CATALOG:-web-demo/catalog/demo-catalog.jsonl}
PORT=${PORT:-18480}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-1000}
RATE=${RATE:-5}
WARMUP_S=${WARMUP_S:-5}
DURATION_S=${DURATION_S:-20}
SOURCES=${SOURCES:-4}
CONNECT_RATE=${CONNECT_RATE:-1000}
# PIN=1 runs the server on CPU 0 and the load generator on CPU 1, so they do not steal each
# other's core mid-measurement; off by default because it also caps the server at one core.
PIN=${PIN:-0}
RESULTS_DIR=${RESULTS_DIR:-bench/results}

die() {
    echo "run-latency: $*" >&2
    exit 1
}

[[ -x $SERVER_BIN ]] || die "no server binary at $SERVER_BIN (build first, or set SERVER_BIN)"
[[ -x $LOADGEN_BIN ]] || die "no load generator at $LOADGEN_BIN (build first, or set LOADGEN_BIN)"
[[ -r $CATALOG ]] || die "cannot read catalog $CATALOG"
[[ $RUNS =~ ^[1-9][0-9]?$ ]] || die "RUNS must be 1..99"
command -v python3 >/dev/null || die "python3 is needed for the summary"

server_cpu=()
loadgen_cpu=()
if [[ $PIN == 1 ]]; then
    server_cpu=(taskset -c 0)
    loadgen_cpu=(taskset -c 1)
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
work_dir=$(mktemp -d)
server_pid=""
mkdir -p "$RESULTS_DIR"

stop_server() {
    [[ -n $server_pid ]] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    # The server drains clients for up to --drain-ms (2 s by default) before exiting.
    for _ in $(seq 1 50); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

cleanup() {
    stop_server
    rm -rf "$work_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

start_server() {
    local log=$1
    port_in_use && die "port $PORT is already in use (set PORT)"
    "${server_cpu[@]}" "$SERVER_BIN" --port "$PORT" --listen 127.0.0.1 --anonymous --anonymous-ids chosen --max-conns-per-ip 0 --catalog "$CATALOG" \
        --log-level warn >"$log" 2>&1 &
    server_pid=$!
    # Ready when the port accepts a connection; give up after 10 s.
    for _ in $(seq 1 100); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            cat "$log" >&2
            die "server exited during start"
        fi
        port_in_use && return 0
        sleep 0.1
    done
    die "server did not listen on port $PORT within 10 s"
}

run_once() {
    local run=$1
    local json="$RESULTS_DIR/latency-$stamp-run$run.json"
    local log="$work_dir/server-run$run.log"
    start_server "$log"
    # Let start-up allocations settle so the "before" RSS sample is a fair baseline.
    sleep 1
    echo "run-latency: run $run of $RUNS (server pid $server_pid, port $PORT)" >&2
    local bound_s=$((WARMUP_S + DURATION_S + 60))
    if ! timeout --signal=INT --kill-after=5 "$bound_s" "${loadgen_cpu[@]}" "$LOADGEN_BIN" \
        --port "$PORT" --connections "$CONNECTIONS" --sources "$SOURCES" \
        --connect-rate "$CONNECT_RATE" --rate "$RATE" --warmup "$WARMUP_S" \
        --duration "$DURATION_S" --catalog "$CATALOG" --server-pid "$server_pid" \
        --json-out "$json" >/dev/null; then
        echo "run-latency: load generator failed in run $run; server log:" >&2
        tail -n 20 "$log" >&2 || true
        stop_server
        return 1
    fi
    stop_server
    if [[ -s $log ]]; then
        cp "$log" "$RESULTS_DIR/latency-$stamp-run$run.server.log"
    fi
}

failed_runs=0
for run in $(seq 1 "$RUNS"); do
    run_once "$run" || failed_runs=$((failed_runs + 1))
done

cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
[[ -n $cpu_model ]] || cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
commit=$(git describe --always --dirty 2>/dev/null || echo "unknown")
summary="$RESULTS_DIR/latency-$stamp.md"

pin_text="no"
[[ $PIN == 1 ]] && pin_text="server on CPU 0, loadgen on CPU 1"
NPROC=$(nproc) CPU_MODEL=$cpu_model KERNEL=$(uname -r) DATE=$(date -u '+%Y-%m-%d %H:%M UTC') \
    COMMIT=$commit PIN_TEXT=$pin_text \
    python3 - "$summary" "$stamp" "$RESULTS_DIR" "$RUNS" <<'EOF'
import json, os, statistics, sys

summary_path, stamp, results_dir, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
reports = []
for run in range(1, runs + 1):
    path = os.path.join(results_dir, f"latency-{stamp}-run{run}.json")
    if os.path.exists(path):
        with open(path) as f:
            reports.append((run, json.load(f)))
if not reports:
    sys.exit("run-latency: no run produced a report")

def row(r):
    c, e, l, s = r["connections"], r["events"], r["latency_ms"], r["server"] or {}
    return {
        "open": f'{c["open"]}/{c["requested"]}',
        "sent": e["sent"], "rate": r["rate"]["achieved_events_per_s"],
        "acked": e["acked"], "errors": sum(e["errors_by_code"].values()),
        "pushed": 100.0 * e["pushes_matched_ratio"],
        "p50": l["p50"], "p90": l["p90"], "p99": l["p99"], "p999": l["p999"], "max": l["max"],
        "ack_p50": r["ack_latency_ms"]["p50"], "took_p99": r["server_took_ms"]["p99"],
        "rss_open": s.get("rss_per_conn_kb_open", -1), "rss_end": s.get("rss_per_conn_kb_end", -1),
        "lg_cpu": r["loadgen"]["cpu_user_s"] + r["loadgen"]["cpu_sys_s"],
        "srv_cores": s.get("cpu_cores_measured", -1),
        "other_cores": r["machine"]["other_cores_measured"],
    }

rows = [(run, row(r)) for run, r in reports]
def median(key):
    return statistics.median(x[key] for _, x in rows)

cfg = reports[0][1]["config"]
lines = [
    f"# rankcast latency benchmark, {stamp}",
    "",
    f"Scenario: {cfg['connections']} connections x {cfg['rate_per_conn_per_s']:g} events/s "
    f"({cfg['connections'] * cfg['rate_per_conn_per_s']:g} events/s in total), "
    f"{cfg['duration_s']:g} s measured after {cfg['warmup_s']:g} s warmup, "
    f"{cfg['sources']} source addresses, catalog of {cfg['items']} items, surface "
    f"`{cfg['surface']}` k={cfg['k']}. A fresh server per run. Latency: event frame written "
    "to its `recs` (matched by `cause`) read, client-side, CLOCK_MONOTONIC.",
    "",
    "Machine: {NPROC} CPUs, {CPU_MODEL}, Linux {KERNEL}; date {DATE}; commit {COMMIT}; "
    "pinned: {PIN_TEXT}.".format(**os.environ),
    "",
    "| run | open | events sent | events/s | acked | errors | got recs % | p50 ms | p90 ms "
    "| p99 ms | p99.9 ms | max ms | ack p50 ms | server took_us p99 ms "
    "| server RSS/conn KB (open) | (end) "
    "| server CPU cores | other CPU cores | loadgen CPU s |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
]
for run, x in rows:
    lines.append(
        f"| {run} | {x['open']} | {x['sent']} | {x['rate']:.1f} | {x['acked']} | {x['errors']} "
        f"| {x['pushed']:.1f} | {x['p50']:.3f} | {x['p90']:.3f} | {x['p99']:.3f} "
        f"| {x['p999']:.3f} | {x['max']:.3f} | {x['ack_p50']:.3f} | {x['took_p99']:.3f} "
        f"| {x['rss_open']:.2f} "
        f"| {x['rss_end']:.2f} | {x['srv_cores']:.2f} | {x['other_cores']:.2f} "
        f"| {x['lg_cpu']:.2f} |")
lines.append(
    f"| **median** | | | {median('rate'):.1f} | | | {median('pushed'):.1f} "
    f"| **{median('p50'):.3f}** | {median('p90'):.3f} | **{median('p99'):.3f}** "
    f"| **{median('p999'):.3f}** | {median('max'):.3f} | {median('ack_p50'):.3f} "
    f"| {median('took_p99'):.3f} "
    f"| **{median('rss_open'):.2f}** | {median('rss_end'):.2f} | {median('srv_cores'):.2f} "
    f"| {median('other_cores'):.2f} | {median('lg_cpu'):.2f} |")
lines += ["", "Server and other CPU are in cores (CPU seconds per second) during the measured "
          "window; other is everything on the machine but the server and the load generator: "
          "a run with a high value shared the machine and its tail is not comparable."]
lines += ["", "Per-run reports: " + ", ".join(
    f"`latency-{stamp}-run{run}.json`" for run, _ in reports) +
          " (not kept in git; each run of `bench/run-latency.sh` writes its own)."]
if len(reports) < runs:
    lines += ["", f"**{runs - len(reports)} of {runs} runs failed** and are not in the table."]
with open(summary_path, "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"median over {len(rows)} run(s): p50 {median('p50'):.3f} ms, p99 {median('p99'):.3f} ms, "
      f"p99.9 {median('p999'):.3f} ms, server RSS {median('rss_open'):.2f} KB/connection "
      f"(after connect), {median('rss_end'):.2f} KB/connection (at the end)")
print(f"summary: {summary_path}")
EOF

[[ $failed_runs -eq 0 ]] || die "$failed_runs of $RUNS runs failed"

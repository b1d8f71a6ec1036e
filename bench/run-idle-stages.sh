#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Where idle memory goes: server RSS per connection after each stage of opening a connection
# (the 101 upgrade only; + hello/welcome, i.e. a session; + subscribe and the first list),
# for rankcast and the two peers, each on a fresh server with CONNECTIONS [10000] idle
# connections held HOLD_S [3] s. Writes bench/results/idle-stages-<stamp>.md. Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/env.sh
PORT=${PORT:-18760}
CONNECTIONS=${CONNECTIONS:-10000}
HOLD_S=${HOLD_S:-3}
SERVERS=${SERVERS:-"rankcast ws socketio"}
bench_ready run-idle-stages
bench_begin idle-stages

start() {
    case $1 in
    rankcast) "$SERVER_BIN" --port "$PORT" --listen 127.0.0.1 --anonymous --anonymous-ids chosen --max-conns-per-ip 0 \
        --catalog "$CATALOG" --log-level warn >/dev/null 2>&1 & ;;
    ws) node bench/peers/ws-peer.mjs --port "$PORT" --catalog "$CATALOG" >/dev/null 2>&1 & ;;
    socketio) node bench/peers/socketio-peer.mjs --port "$PORT" --catalog "$CATALOG" >/dev/null 2>&1 & ;;
    esac
    pid=$!
    bench_wait_port "$PORT" || true
    sleep 0.5
}

{
    echo "# Idle memory by stage, $stamp"
    echo
    echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), Linux $(uname -r); commit $(git describe --always --dirty); load average $(cut -d' ' -f1 /proc/loadavg). $CONNECTIONS connections per run, a fresh server each, 100k-item catalog. Server RSS after all are open minus before, per connection (KB)."
    echo
    echo "| server | upgrade only | + hello (session) | + subscribe (first list) | failed |"
    echo "|---|---|---|---|---|"
} >"$out"
for server in $SERVERS; do
    row="| $server"
    failed=0
    framing=()
    [[ $server == socketio ]] && framing=(--framing socketio)
    for stage in upgrade welcome recs; do
        start "$server"
        timeout 120 "$LOADGEN_BIN" --port "$PORT" -n "$CONNECTIONS" --sources 4 --connect-rate 4000 \
            --scenario idle --open-until "$stage" --warmup 0 --duration "$HOLD_S" \
            --server-pid "$pid" "${framing[@]}" --json-out "$work/r.json" >/dev/null 2>&1 || true
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
        pid=""
        kb=$(python3 -c "import json; r=json.load(open('$work/r.json')); print(f\"{r['server']['rss_per_conn_kb_open']:.2f}\")")
        f=$(python3 -c "import json; r=json.load(open('$work/r.json')); c=r['connections']; print(c['failed']+c['lost_during_run'])")
        failed=$((failed + f))
        row="$row | $kb"
        echo "run-idle-stages: $server $stage: $kb KB/connection, $f failed" >&2
    done
    echo "$row | $failed |" >>"$out"
done
cat "$out"

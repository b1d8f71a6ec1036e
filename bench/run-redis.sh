#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Profile-store benchmark against a real redis-server (scripts/redis):
#  1. write-behind batching: 1,000 connections x 5 events/s for DURATION_S seconds; reports
#     Redis commands per accepted event and the mean profile size in Redis;
#  2. profile loads: a fresh rankcast on the same Redis, then LOAD_USERS returning users
#     connect as fast as the load generator opens connections; reports profile loads/s.
# Builds nothing (build first). Writes a markdown summary to bench/results/. Loopback only,
# bounded in time; every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER_BIN=${SERVER_BIN:-build/server/rankcast}
LOADGEN_BIN=${LOADGEN_BIN:-build/bench/rankcast-loadgen}
CATALOG=${CATALOG:-web-demo/catalog/demo-catalog.jsonl}
DURATION_S=${DURATION_S:-15}
CONNS=${CONNS:-1000}
LOAD_USERS=${LOAD_USERS:-5000}
PORT=${PORT:-18930}
RESULTS_DIR=${RESULTS_DIR:-bench/results}

work=$(mktemp -d)
server_pid=""
redis_env=""
cleanup() {
    [[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    [[ -n $redis_env ]] && scripts/redis stop --dir "$REDIS_DIR" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

metric() { # name -> value summed over labels, from the running server
    curl -s "http://127.0.0.1:$PORT/metrics" |
        awk -v n="$1" '$1 ~ "^"n"({|$)" { s += $2 } END { printf "%.0f", s }'
}

start_server() {
    "$SERVER_BIN" --port "$PORT" --listen 127.0.0.1 --anonymous --anonymous-ids chosen --max-conns-per-ip 0 --catalog "$CATALOG" --redis "$REDIS_URL" \
        --log-level warn >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && return 0
        sleep 0.1
    done
    cat "$work/server.log" >&2
    echo "run-redis: server not ready" >&2
    exit 1
}

stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=""
}

redis_env=$(scripts/redis start --owner $$)
eval "$redis_env"

# 1. Batching.
start_server
"$LOADGEN_BIN" --port "$PORT" -n "$CONNS" --sources 4 --rate 5 --warmup 2 --duration "$DURATION_S" \
    --catalog "$CATALOG" --json-out "$work/write.json" >/dev/null 2>"$work/write.err"
sleep 0.5
events=$(metric rankcast_events_received_total)
commands=$(metric rankcast_profile_commands_total)
written=$(metric rankcast_profile_updates_written_total)
stop_server # the drain writes what is still pending
keys=$(scripts/redis cli --dir "$REDIS_DIR" --scan --pattern 'rc:p:*' | wc -l)
bytes=0
for k in $(scripts/redis cli --dir "$REDIS_DIR" --scan --pattern 'rc:p:*' | head -200); do
    bytes=$((bytes + $(scripts/redis cli --dir "$REDIS_DIR" MEMORY USAGE "$k")))
done
sampled=$((keys < 200 ? keys : 200))

# 2. Loads: returning users (the first run's users, lg-<pid>-<i>, are gone; these are new
# ids, so each load is a real GET that finds nothing or something).
start_server
t0=$(date +%s.%N)
"$LOADGEN_BIN" --port "$PORT" -n "$LOAD_USERS" --sources 8 --connect-rate 20000 --rate 0.2 \
    --warmup 0 --duration 3 --items 100 >/dev/null 2>"$work/load.err" || true
loads=$(metric rankcast_profile_loads_total)
t1=$(date +%s.%N)
stop_server
loads_per_s=$(awk -v l="$loads" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", l / (b - a) }')

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$RESULTS_DIR/redis-$stamp.md"
{
    echo "# rankcast profile-store benchmark, $stamp"
    echo
    echo "Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(uname -r); redis-server $(redis-server --version | awk '{print $3}' | tr -d v=); commit $(git rev-parse --short HEAD)."
    echo
    echo "| figure | value |"
    echo "|---|---|"
    echo "| events accepted ($CONNS connections x 5 events/s, ${DURATION_S}+2 s) | $events |"
    echo "| Redis commands for profile updates and loads | $commands |"
    echo "| **commands per event** | $(awk -v c="$commands" -v e="$events" 'BEGIN { printf "%.3f", c / e }') |"
    echo "| profile updates confirmed | $written |"
    echo "| profiles in Redis | $keys |"
    echo "| **mean profile size** (MEMORY USAGE, $sampled sampled) | $((sampled ? bytes / sampled : 0)) bytes |"
    echo "| profile loads during $LOAD_USERS connections | $loads |"
    echo "| **profile loads per second** (bounded by the connect rate) | $loads_per_s |"
} >"$out"
cat "$out"

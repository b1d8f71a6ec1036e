#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# 100,000 idle connections on one machine: `rankcast --workers W` (W share-nothing processes
# on one port, joined by a throwaway Kafka broker, which --workers needs) and G load
# generators of CONNECTIONS/G connections each (every process here may hold 19,000), merged by
# bench/lgmulti.py. Reports failures, losses and the RSS per connection summed over the
# workers. Builds nothing. Bounded: Kafka start, readiness, the generators and the stop all
# have time limits. Results: bench/results/idle100k-<stamp>.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER_BIN=${SERVER_BIN:-build/server/rankcast}
LOADGEN_BIN=${LOADGEN_BIN:-build/bench/rankcast-loadgen}
CATALOG=${CATALOG:-web-demo/catalog/demo-catalog.jsonl}
RESULTS_DIR=${RESULTS_DIR:-bench/results}
PORT=${PORT:-18790}
WORKERS=${WORKERS:-6}
GENERATORS=${GENERATORS:-6}
CONNECTIONS=${CONNECTIONS:-100000}
CONNECT_RATE=${CONNECT_RATE:-1500}   # per generator
HOLD_S=${HOLD_S:-10}
TLS=${TLS:-0}                         # 1: wss (a throwaway self-signed certificate)
TLS_ARGS=() LG_TLS=() scheme=http

die() {
    echo "run-idle-100k: $*" >&2
    exit 1
}
[[ -x $SERVER_BIN && -x $LOADGEN_BIN ]] || die "build first (ninja -C build)"
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && die "port $PORT is taken (set PORT)"
mkdir -p "$RESULTS_DIR"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
server_pid=""
cleanup() {
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        # Up to 30 s: closing 100,000 connections kept 6 workers on 2 cores busy for 1.5 to
        # 4.5 s past their --drain-ms (2 s) in one run, and over 10 s in another.
        for _ in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    [[ -n ${KAFKA_DIR:-} ]] && scripts/kafka stop --dir "$KAFKA_DIR" --timeout 10 >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $TLS == 1 ]]; then
    cert_dir=$(mktemp -d)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -keyout "$cert_dir/key.pem" -out "$cert_dir/cert.pem" -subj /CN=127.0.0.1 2>/dev/null
    TLS_ARGS=(--tls-cert "$cert_dir/cert.pem" --tls-key "$cert_dir/key.pem") LG_TLS=(--tls) scheme=https
fi
echo "run-idle-100k: starting a throwaway Kafka broker" >&2
env=$(timeout 180 scripts/kafka start --temp --owner $$ --heap 384m) || die "Kafka did not start"
eval "$env"
"$SERVER_BIN" --port "$PORT" --listen 127.0.0.1 --anonymous --anonymous-ids chosen --max-conns-per-ip 0 \
    --catalog "$CATALOG" --workers "$WORKERS" \
    --kafka "$KAFKA_BOOTSTRAP" --kafka-topic-prefix "idle$stamp." --node-id idle \
    --log-level warn "${TLS_ARGS[@]}" >"/tmp/idle100k-$stamp.log" 2>&1 &
server_pid=$!
ready=0
for _ in $(seq 1 600); do
    if curl -fsk "$scheme://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$server_pid" 2>/dev/null || die "rankcast exited: $(tail -5 "/tmp/idle100k-$stamp.log")"
    sleep 0.1
done
[[ $ready == 1 ]] || die "rankcast not ready in 60 s"
sleep 2
workers=$(pgrep -P "$server_pid" | paste -sd, -)
[[ -n $workers ]] || die "no worker processes under $server_pid"
echo "run-idle-100k: workers $workers; $GENERATORS generators" >&2
load_before=$(cut -d' ' -f1 /proc/loadavg)
per=$(((CONNECTIONS + GENERATORS - 1) / GENERATORS))
timeout 600 python3 bench/lgmulti.py --procs "$GENERATORS" --server-pids "$workers" \
    --timeout 500 --out "$RESULTS_DIR/idle100k-$stamp.json" -- \
    --port "$PORT" -n "$per" --sources 4 --scenario idle --connect-rate "$CONNECT_RATE" \
    --connect-timeout 60 --warmup 0 --duration "$HOLD_S" "${LG_TLS[@]}"
python3 - "$RESULTS_DIR/idle100k-$stamp.json" "$RESULTS_DIR/idle100k-$stamp.md" "$load_before" \
    "$WORKERS" <<'PY'
import json, os, subprocess, sys
r = json.load(open(sys.argv[1]))
c, m = r["connections"], r["multi"]
commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
lines = [f"# {c['requested']:,} idle connections on one machine", "",
         f"Machine: {os.cpu_count()} CPUs, {model}, Linux {os.uname().release}; commit {commit}; "
         f"load average {sys.argv[3]} before. rankcast --workers {sys.argv[4]} (Kafka bus), "
         f"{m['processes']} load generators on the same machine; TLS: {r.get('tls')}.", "",
         "| requested | open | failed | lost while held | server RSS before → all open (KB, all workers) | KB per connection | s until all open |",
         "|---|---|---|---|---|---|---|",
         f"| {c['requested']:,} | {c['open']:,} | {c['failed']} | {c['lost_during_run']} | "
         f"{m['rss_kb_before']:,} → {m['rss_kb_all_open']:,} | {m['rss_per_conn_kb_all_open']:.2f} | "
         f"{m['seconds_until_all_open']:.1f} |", "",
         f"First failures: {json.dumps(c.get('first_failure', {}))}."]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY

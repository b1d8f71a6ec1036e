#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Memory given back: server RSS before CONNECTIONS [10000] sessions (ws; wss with TLS_CONNECTIONS
# [5000]) connect and subscribe, while they are held HOLD_S [3] s, and SETTLE_S [4] s after they
# all closed (sessions idle out after 1 s), with the heap trim off (--heap-trim-s 0) and on (the
# default), alternated RUNS [2] times, each on a fresh server. Writes
# bench/results/memory-return-<stamp>.md. Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/env.sh
PORT=${PORT:-18770}
CONNECTIONS=${CONNECTIONS:-10000}
TLS_CONNECTIONS=${TLS_CONNECTIONS:-5000}
HOLD_S=${HOLD_S:-3}
SETTLE_S=${SETTLE_S:-4}
RUNS=${RUNS:-2}
bench_ready run-memory-return
bench_begin memory-return
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=127.0.0.1 2>/dev/null

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# one TRANSPORT TRIM_S: prints a table row
one() {
    local transport=$1 trim_s=$2 n=$CONNECTIONS tls_args=() lg_tls=()
    if [[ $transport == wss ]]; then
        n=$TLS_CONNECTIONS
        tls_args=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
        lg_tls=(--tls)
    fi
    "$SERVER_BIN" --port "$PORT" --listen 127.0.0.1 --anonymous --anonymous-ids chosen --max-conns-per-ip 0 \
        --catalog "$CATALOG" --log-level warn --session-idle-s 1 --heap-trim-s "$trim_s" \
        "${tls_args[@]}" >/dev/null 2>&1 &
    pid=$!
    bench_wait_port "$PORT" || true
    sleep 0.5
    timeout 120 "$LOADGEN_BIN" "${lg_tls[@]}" --port "$PORT" -n "$n" --sources 4 --connect-rate 3000 \
        --scenario idle --open-until recs --warmup 0 --duration "$HOLD_S" --catalog "$CATALOG" \
        --server-pid "$pid" --json-out "$work/r.json" >/dev/null 2>&1 || true
    sleep "$SETTLE_S"
    local left
    left=$(rss_kb "$pid")
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
    pid=""
    python3 - "$work/r.json" "$transport" "$trim_s" "$left" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r["server"]; c = r["connections"]
before, held, left = s["rss_kb_before"], s["rss_kb_end"], int(sys.argv[4])
print(f"| {sys.argv[2]} | {sys.argv[3]} | {c['open']} ({c['failed']} failed) | {before / 1024:.1f} | "
      f"{held / 1024:.1f} | {s['rss_per_conn_kb_end']:.2f} | {left / 1024:.1f} | "
      f"{round(100 * (held - left) / max(held - before, 1))} % |")
PY
}

{
    echo "# Memory given back after connections leave, $stamp"
    echo
    echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), Linux $(uname -r); commit $(git describe --always --dirty); load average $(cut -d' ' -f1 /proc/loadavg). 100k-item catalog; each connection says hello and subscribes (20 items); held $HOLD_S s, then closed; sessions idle out after 1 s; RSS read $SETTLE_S s after the close. \`--heap-trim-s 0\`: no heap trim."
    echo
    echo "| transport | --heap-trim-s | connections | RSS before (MB) | RSS held (MB) | KB per connection, held | RSS after they left (MB) | growth given back |"
    echo "|---|---|---|---|---|---|---|---|"
} >"$out"
for _ in $(seq 1 "$RUNS"); do
    for transport in ws wss; do
        for trim_s in 0 10; do
            row=$(one "$transport" "$trim_s")
            echo "$row" >>"$out"
            echo "run-memory-return: $row" >&2
        done
    done
done
cat "$out"

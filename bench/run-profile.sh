#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Profiles rankcast under a benchmark load: for each scenario, a fresh server, the load
# generator at a fixed load, and while it runs `perf record -g` on the server (cpu-clock: this
# machine's VM has no hardware counters), then a syscall count (`perf stat` on the
# raw_syscalls tracepoint) to give syscalls per event / per delivery. Writes
# bench/results/profile-<stamp>-<scenario>.txt (top symbols, self and with children; the
# syscall mix) and a short summary. Builds nothing. perf comes from Debian's linux-perf
# (scripts/setup). Usage: bench/run-profile.sh [sustained] [fanout] [handshake]
# [handshake-wss] [latency]
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/env.sh
PORT=${PORT:-18780}
PROFILE_S=${PROFILE_S:-8}
# The loads: sustained and latency are events (connections x rate), fanout pushes to every
# connection, handshake a closed loop of slots.
SUS_CONNS=${SUS_CONNS:-1000} SUS_RATE=${SUS_RATE:-20}
LAT_CONNS=${LAT_CONNS:-10000} LAT_RATE=${LAT_RATE:-2}
FAN_CONNS=${FAN_CONNS:-5000} FAN_RATE=${FAN_RATE:-50}
HS_SLOTS=${HS_SLOTS:-64}
TOKEN=bench-admin-token
scenarios=("$@")
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=(sustained fanout handshake)

die() {
    echo "run-profile: $*" >&2
    exit 1
}
command -v perf >/dev/null || die "perf is missing (scripts/setup installs linux-perf)"
bench_ready run-profile
stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=$(mktemp -d)
server_pid="" lg_pid=""
cleanup() {
    [[ -n $lg_pid ]] && kill -INT "$lg_pid" 2>/dev/null || true
    [[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null || true
    sleep 0.5
    [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

profile_one() {
    local scen=$1 out="$RESULTS_DIR/profile-$stamp-$1.txt"
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && die "port $PORT is taken (set PORT)"
    local tls_args=()
    if [[ $scen == handshake-wss ]]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=127.0.0.1 2>/dev/null
        tls_args=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
    fi
    "$SERVER_BIN" --port "$PORT" --listen 127.0.0.1 --anonymous --anonymous-ids chosen --max-conns-per-ip 0 \
        --catalog "$CATALOG" --admin-token "$TOKEN" "${tls_args[@]}" \
        --log-level warn >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
    local total=$((PROFILE_S + 6)) args=()
    case $scen in
    sustained) args=(-n "$SUS_CONNS" --rate "$SUS_RATE" --catalog "$CATALOG") ;;
    latency) args=(-n "$LAT_CONNS" --rate "$LAT_RATE" --catalog "$CATALOG" --connect-rate 5000) ;;
    fanout) args=(-n "$FAN_CONNS" --scenario fanout --push-rate "$FAN_RATE" --admin-token "$TOKEN" --connect-rate 5000) ;;
    handshake) args=(-n "$HS_SLOTS" --scenario handshake --sources 64 --connect-rate 100000) ;;
    handshake-wss) args=(-n "$HS_SLOTS" --scenario handshake --sources 64 --connect-rate 100000 --tls) ;;
    *) die "unknown scenario $scen" ;;
    esac
    timeout --signal=INT 120 "$LOADGEN_BIN" --port "$PORT" --sources 4 --warmup 3 \
        --duration "$total" --json-out "$work/lg.json" --server-pid "$server_pid" "${args[@]}" \
        >/dev/null 2>"$work/lg.err" &
    lg_pid=$!
    # Wait until the load runs (connections open, warmup begun), then profile, then count syscalls.
    for _ in $(seq 1 600); do grep -q "ready after\|handshakes on" "$work/lg.err" && break; sleep 0.1; done
    sleep 3
    local load_before
    load_before=$(cut -d' ' -f1 /proc/loadavg)
    perf record -e cpu-clock -F 999 -g -p "$server_pid" -o "$work/perf.data" -- sleep "$PROFILE_S" \
        >/dev/null 2>&1
    perf stat -e raw_syscalls:sys_enter -p "$server_pid" -x, -o "$work/stat.txt" -- sleep 2 \
        >/dev/null 2>&1 || true
    perf trace -s -p "$server_pid" -o "$work/trace.txt" -- sleep 1 >/dev/null 2>&1 || true
    wait "$lg_pid" || true
    lg_pid=""
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    local syscalls
    syscalls=$(awk -F, '/raw_syscalls/ {print $1}' "$work/stat.txt" 2>/dev/null || echo "?")
    {
        echo "# rankcast profile: $scen ($stamp)"
        echo
        echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), Linux $(uname -r), commit $(git describe --always --dirty), load average $load_before at the start"
        echo "load: rankcast-loadgen ${args[*]} (warmup 3 s; perf for $PROFILE_S s, cpu-clock at 999 Hz, call graphs by frame pointer)"
        python3 - "$work/lg.json" "$syscalls" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s, m, e, f, h = r.get("server") or {}, r["machine"], r["events"], r["fanout"], r["handshakes"]
secs = r["rate"]["measured_s"] or 1
print(f"generator: {r['connections']['open']} open; events/s {r['rate']['achieved_events_per_s']:.0f}, "
      f"acked {e['acked']}; deliveries/s {f['deliveries_per_s']:.0f}; handshakes/s {h['per_s']:.0f}; "
      f"event->recs p50/p99 {r['latency_ms']['p50']}/{r['latency_ms']['p99']} ms; "
      f"server {s.get('cpu_cores_measured')} cores, generator {m['loadgen_cores_measured']}, "
      f"other {m['other_cores_measured']}")
try:
    per_s = int(sys.argv[2]) / 2.0
    unit = max(r['rate']['achieved_events_per_s'], f['deliveries_per_s'], h['per_s'], 1e-9)
    what = "event" if r['rate']['achieved_events_per_s'] else ("delivery" if f['deliveries_per_s'] else "handshake")
    print(f"server syscalls: {per_s:.0f}/s over 2 s, {per_s / unit:.2f} per {what}")
except ValueError:
    print("server syscalls: not counted")
PY
        echo
        echo "## Top symbols, self time (perf report --no-children --sort dso,symbol)"
        echo
        perf report -i "$work/perf.data" --stdio --no-children --sort dso,symbol \
            --percent-limit 0.7 -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -45
        echo
        echo "## With children (perf report --children --sort symbol), top entries"
        echo
        perf report -i "$work/perf.data" --stdio --children --sort symbol --percent-limit 4 \
            -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
        echo
        echo "## Syscall mix over 1 s (perf trace -s)"
        echo
        sed -n '1,60p' "$work/trace.txt" 2>/dev/null || true
    } >"$out"
    echo "run-profile: $scen -> $out" >&2
    sed -n '3,8p' "$out" >&2
}

for scen in "${scenarios[@]}"; do
    profile_one "$scen"
done

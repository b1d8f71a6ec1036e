#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A one-minute check that the benchmark tools work: every load-generator scenario, both
# framings, ws and wss, against rankcast and the two peers, a few seconds each, plus
# lgmulti.py merging two generators, a tiny run-compare.sh and a tiny run-engine.sh. Exits
# non-zero on the first failure. Not a measurement: the numbers it prints mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
LG=${LOADGEN_BIN:-build/bench/rankcast-loadgen}
SERVER_BIN=${SERVER_BIN:-build/server/rankcast}
C=web-demo/catalog/demo-catalog.jsonl
PORT=${PORT:-18770}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
[[ -d bench/peers/node_modules ]] || (cd bench/peers && npm ci --no-audit --no-fund --loglevel=error)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$work/k.pem" -out "$work/c.pem" -subj /CN=127.0.0.1 2>/dev/null
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; fail "nothing on port $1"; }
check() { # name, json, python condition on r
    python3 -c "import json,sys; r=json.load(open('$2')); sys.exit(0 if ($3) else 1)" || fail "$1: $3"
    echo "smoke: ok: $1" >&2
}
i=0
for server in rankcast ws socketio; do
    for tls in 0 1; do
        p=$((PORT + i)); i=$((i + 1))
        targs=() lgt=() fr=()
        [[ $tls == 1 ]] && targs=(--tls-cert "$work/c.pem" --tls-key "$work/k.pem") && lgt=(--tls)
        [[ $server == socketio ]] && fr=(--framing socketio)
        case $server in
        rankcast) "$SERVER_BIN" --port $p --listen 127.0.0.1 --anonymous --anonymous-ids chosen --max-conns-per-ip 0 --catalog $C \
            --admin-token tok --log-level error "${targs[@]}" >/dev/null 2>&1 & ;;
        *) node "bench/peers/$server-peer.mjs" --port $p --catalog $C --admin-token tok "${targs[@]}" >/dev/null 2>&1 & ;;
        esac
        pids+=($!)
        wait_port $p
        t="$server tls=$tls"
        $LG --port $p "${fr[@]}" "${lgt[@]}" -n 50 --rate 5 --warmup 0.5 --duration 1.5 --catalog $C --json-out "$work/l.json" >/dev/null 2>&1 || true
        check "$t latency" "$work/l.json" "r['connections']['open']==50 and r['events']['acked']==r['events']['sent']>0 and r['latency_ms']['count']>0"
        $LG --port $p "${fr[@]}" "${lgt[@]}" -n 50 --rate 5 --stalled 5 --warmup 0.5 --duration 1.5 --catalog $C --json-out "$work/s.json" >/dev/null 2>&1 || true
        check "$t stalled" "$work/s.json" "r['stalled']['stalled']==5 and r['latency_ms']['count']>0"
        $LG --port $p "${fr[@]}" "${lgt[@]}" -n 100 --scenario idle --warmup 0 --duration 1 --json-out "$work/i.json" >/dev/null 2>&1 || true
        check "$t idle" "$work/i.json" "r['connections']['open']==100 and r['connections']['failed']==0"
        $LG --port $p "${fr[@]}" "${lgt[@]}" -n 8 --sources 8 --scenario handshake --handshake-until welcome --connect-rate 100000 --warmup 0.5 --duration 1 --json-out "$work/h.json" >/dev/null 2>&1 || true
        check "$t handshake" "$work/h.json" "r['handshakes']['measured']>0 and r['handshakes']['failed']==0"
        if [[ $tls == 0 ]]; then
            $LG --port $p "${fr[@]}" -n 50 --scenario fanout --admin-token tok --push-rate 5 --warmup 0.5 --duration 1.5 --json-out "$work/f.json" >/dev/null 2>&1 || true
            check "$t fanout" "$work/f.json" "r['fanout']['accepted']>0 and r['fanout']['delivered_ratio']>0.99"
        fi
    done
done
p=$((PORT + i))
"$SERVER_BIN" --port $p --listen 127.0.0.1 --anonymous --anonymous-ids chosen --max-conns-per-ip 0 --catalog $C --log-level error >/dev/null 2>&1 &
pids+=($!)
wait_port $p
LOADGEN_BIN=$LG python3 bench/lgmulti.py --procs 2 --server-pids "${pids[-1]}" --out "$work/m.json" -- \
    --port $p -n 100 --sources 2 --rate 5 --warmup 0.5 --duration 1.5 --catalog $C 2>/dev/null
check "lgmulti merge" "$work/m.json" "r['connections']['open']==200 and r['latency_ms']['count']==sum(b[1] for b in r['histograms']['latency_ms']['buckets'])"
RESULTS_DIR="$work/results" BASE_PORT=$((PORT + 20)) CATALOG=$C IDLE_CONNS=200 IDLE_HOLD_S=1 LAT_CONNS=100 LAT_WARMUP_S=1 \
    LAT_DURATION_S=1 SUS_CONNS=100 SUS_RATES="2" SUS_WARMUP_S=1 SUS_DURATION_S=1 FAN_CONNS=100 FAN_RATES="2" \
    FAN_DURATION_S=1 HS_SLOTS=8 HS_DURATION_S=1 ST_CONNS=100 ST_STALLED=5 ST_DURATION_S=1 \
    bench/run-compare.sh >/dev/null 2>&1 || fail "run-compare.sh"
ls "$work/results"/compare-*.md "$work/results"/compare-*-summary.svg >/dev/null || fail "run-compare.sh wrote no table"
echo "smoke: ok: run-compare.sh (tiny)" >&2
RUNS=1 WARMUP=2000 EVENTS=2000 CATALOGS=$C RESULTS_DIR="$work/results" BIN=${ENGINEBENCH_BIN:-build/bench/rankcast-enginebench} \
    bench/run-engine.sh >/dev/null 2>&1 || fail "run-engine.sh"
ls "$work/results"/engine-*.md >/dev/null || fail "run-engine.sh wrote no table"
echo "smoke: ok: run-engine.sh (tiny)" >&2
echo "smoke: all ok" >&2

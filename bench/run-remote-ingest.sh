#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Remote-ingestion rate of one rankcast node over a real Kafka broker on this machine: a
# producer writes events to the node's events topic at fixed rates (a step ramp), in the bus
# encoding nodes publish, and the script checks whether the node keeps up (its consumer lag
# stays bounded) and what each remote event costs it. BASE_BIN alternates a second build.
# Builds nothing. Results go to bench/results/remote-ingest-*.
#
# The producer (rankcast-remote-producer) stands for the other nodes of a cluster: PRODUCERS
# librdkafka producers, each with a share of the users and the rate, so that its batches hold
# what one node's would, with a node's producer settings by default (LINGER_MS 1 as
# --kafka-linger-ms, no compression; both builds alike): the broker's work depends on them.
#
# Per step: a fresh node on fresh topics, /readyz 200, then the producer runs DURATION_S
# seconds. The node's consumer lag is the events the producer had delivered (the broker has
# them) minus those the node consumed (rankcast_bus_consumed_total), when the producer stops;
# `catch-up` is how long the node then took to consume them all. The node's own histogram
# rankcast_bus_remote_event_lag_seconds gives produce -> apply (wall clocks). A step is kept up
# with when the producer sent >= 95 % of the rate, the node caught up within CATCHUP_MAX_MS
# and its lag p99 stayed <= LAG_P99_MAX_MS.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER_BIN=${SERVER_BIN:-build/server/rankcast}
BASE_BIN=${BASE_BIN:-}
PRODUCER_BIN=${PRODUCER_BIN:-build/bench/rankcast-remote-producer}
CATALOG=${CATALOG:-web-demo/catalog/demo-catalog.jsonl}
RESULTS_DIR=${RESULTS_DIR:-bench/results}
PORT=${PORT:-18590}
RATES=${RATES-"2500 5000 10000 20000 40000"}
RUNS=${RUNS:-3}
DURATION_S=${DURATION_S:-10}
PRODUCERS=${PRODUCERS:-8}
USERS=${USERS:-20000}
LINGER_MS=${LINGER_MS:-1}
COMPRESSION=${COMPRESSION:-none}
CATCHUP_MAX_MS=${CATCHUP_MAX_MS:-1000}
LAG_P99_MAX_MS=${LAG_P99_MAX_MS:-1000}
# The replay pass: REPLAY_EVENTS events written at REPLAY_RATE/s before a fresh node starts;
# the node reads them as its history (--kafka-replay-h) through the same consume path, and the
# time from its start to /readyz 200 gives its catch-up rate. 0: no replay pass.
REPLAY_EVENTS=${REPLAY_EVENTS:-200000}
REPLAY_RATE=${REPLAY_RATE:-50000}

die() {
    echo "run-remote-ingest: $*" >&2
    exit 1
}

for b in "$SERVER_BIN" ${BASE_BIN:+"$BASE_BIN"} "$PRODUCER_BIN"; do
    [[ -x $b ]] || die "no binary at $b (build first: ninja -C build)"
done
for v in PORT RUNS DURATION_S PRODUCERS USERS CATCHUP_MAX_MS LAG_P99_MAX_MS REPLAY_EVENTS \
    REPLAY_RATE; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
mkdir -p "$RESULTS_DIR"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=$(mktemp -d)
node_pid="" kafka_dir=""
# Both builds are copied: a rebuild during the run cannot change what is measured.
cp "$SERVER_BIN" "$work/new"
[[ -z $BASE_BIN ]] || cp "$BASE_BIN" "$work/base"

cleanup() {
    if [[ -n $node_pid ]]; then
        kill "$node_pid" 2>/dev/null || true
        wait "$node_pid" 2>/dev/null || true
    fi
    [[ -z $kafka_dir ]] || scripts/kafka stop --dir "$kafka_dir" --timeout 20 >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && die "port $PORT is already in use (set PORT)"
echo "run-remote-ingest: starting a Kafka broker" >&2
kafka_env=$(scripts/kafka start --dir "$work/kafka" --owner $$ --timeout 90) ||
    die "the Kafka broker did not start"
kafka_dir=$(sed -n 's/^KAFKA_DIR=//p' <<<"$kafka_env")
bootstrap=$(sed -n 's/^KAFKA_BOOTSTRAP=//p' <<<"$kafka_env")
kafka_pid=$(sed -n 's/^KAFKA_PID=//p' <<<"$kafka_env")

cpu_s() {
    awk -v tck="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / tck }' \
        "/proc/$1/stat" 2>/dev/null || echo -1
}

metrics() {
    { curl -s -m 2 "http://127.0.0.1:$PORT/metrics" || true; } |
        grep -E '^rankcast_bus_(consumed_total|remote_event_lag_seconds_(bucket|count))' || true
}

# consumed: the node's rankcast_bus_consumed_total, or nothing (never a failure: the caller
# runs under set -e, and a busy node may miss the 2 s bound).
consumed() {
    { curl -s -m 2 "http://127.0.0.1:$PORT/metrics" || true; } |
        awk '/^rankcast_bus_consumed_total/ { n = $2 } END { if (n != "") print n }'
}

# start_node BUILD PREFIX TAG: a fresh node on topics PREFIX*, waits for /readyz 200 (at most
# 120 s); sets node_pid, and ready_ms (start to ready).
start_node() {
    local t0 code="" i
    t0=$(date +%s%N)
    "$work/$1" --port "$PORT" --listen 127.0.0.1 --catalog "$CATALOG" --kafka "$bootstrap" \
        --pseudonym-key bench-ingest-key --node-id ingest --kafka-topic-prefix "$2" \
        --log-level warn >"$work/$3.log" 2>&1 &
    node_pid=$!
    for i in $(seq 1 6000); do
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$PORT/readyz" || true)
        [[ $code == 200 ]] && break
        kill -0 "$node_pid" 2>/dev/null || die "$3: the node exited: $(tail -n 5 "$work/$3.log")"
        sleep 0.02
    done
    [[ $code == 200 ]] || die "$3: the node was not ready within 120 s"
    ready_ms=$((($(date +%s%N) - t0) / 1000000))
}

stop_node() {
    kill "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
    node_pid=""
}

# replay BUILD RUN: REPLAY_EVENTS events on fresh topics (a node creates them and stops),
# then a fresh node learns them as its history; writes replay-TAG.json.
replay() {
    local build=$1 run=$2 tag="replay-$1-r$2" prefix="ri${stamp}replay${1}r${2}." n1 consumed_now
    start_node "$build" "$prefix" "$tag-create"
    stop_node
    timeout --kill-after=5 $((REPLAY_EVENTS / REPLAY_RATE + 60)) "$PRODUCER_BIN" \
        --bootstrap "$bootstrap" --topic "${prefix}events" --rate "$REPLAY_RATE" \
        --duration "$(python3 -c "print($REPLAY_EVENTS / $REPLAY_RATE)")" --catalog "$CATALOG" \
        --producers "$PRODUCERS" --users "$USERS" --linger-ms 5 >"$work/$tag.producer.json" ||
        die "$tag: the producer failed"
    start_node "$build" "$prefix" "$tag"
    n1=$(cpu_s "$node_pid") consumed_now=$(consumed)
    stop_node
    python3 - "$work/$tag.producer.json" "$build" "$run" "$ready_ms" "$n1" "$consumed_now" \
        >"$RESULTS_DIR/remote-ingest-$stamp-$tag.json" <<'EOF'
import json, sys
path, build, run, ready_ms, cpu, consumed = sys.argv[1:]
prod = json.load(open(path))
print(json.dumps({"replay": True, "build": build, "run": int(run), "events": prod["delivered"],
                  "consumed": int(consumed), "ready_ms": int(ready_ms),
                  "events_per_s": prod["delivered"] * 1000 / max(int(ready_ms), 1),
                  "node_cpu_s": float(cpu),
                  "node_us_per_event": float(cpu) * 1e6 / max(prod["delivered"], 1)}))
EOF
    echo "run-remote-ingest: $tag: $(cat "$RESULTS_DIR/remote-ingest-$stamp-$tag.json")" >&2
}

# step BUILD RATE RUN: one measurement against a fresh node; writes TAG.json.
step() {
    local build=$1 rate=$2 run=$3 tag="$1-$2-r$3"
    local prefix="ri${stamp}${build}${rate}r${run}." i
    start_node "$build" "$prefix" "$tag"
    metrics >"$work/$tag.m0"
    local n0 k0 n1 k1 c_end t_end c_now
    n0=$(cpu_s "$node_pid") k0=$(cpu_s "$kafka_pid")
    timeout --kill-after=5 $((DURATION_S + 30)) "$PRODUCER_BIN" --bootstrap "$bootstrap" \
        --topic "${prefix}events" --rate "$rate" --duration "$DURATION_S" --catalog "$CATALOG" \
        --producers "$PRODUCERS" --users "$USERS" --linger-ms "$LINGER_MS" --compression "$COMPRESSION" \
        >"$work/$tag.producer.json" 2>"$work/$tag.producer.err" || true
    c_end=$(consumed) t_end=$(date +%s%N)
    n1=$(cpu_s "$node_pid") k1=$(cpu_s "$kafka_pid")
    metrics >"$work/$tag.m1"
    local delivered catchup_ms=-1
    delivered=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["delivered"])' \
        "$work/$tag.producer.json" 2>/dev/null || echo 0)
    # Catch-up: until the node has consumed every delivered event (10 s at most).
    for i in $(seq 1 1000); do
        c_now=$(consumed)
        if ((${c_now:-0} >= delivered)); then
            catchup_ms=$((($(date +%s%N) - t_end) / 1000000))
            break
        fi
        sleep 0.01
    done
    python3 - "$work/$tag" "$build" "$rate" "$run" "$c_end" "$delivered" "$catchup_ms" \
        "$n0" "$n1" "$k0" "$k1" "$DURATION_S" >"$RESULTS_DIR/remote-ingest-$stamp-$tag.json" <<'EOF'
import json, sys
base, build, rate, run, c_end, delivered, catchup_ms, n0, n1, k0, k1, dur = sys.argv[1:]
def read(path):
    out = {}
    for line in open(path):
        k, v = line.rsplit(" ", 1)
        out[k] = float(v)
    return out
m0, m1 = read(base + ".m0"), read(base + ".m1")
prod = json.load(open(base + ".producer.json"))
buckets = sorted((float(k.split('le="')[1].split('"')[0]), m1[k] - m0.get(k, 0))
                 for k in m1 if "_bucket{" in k)
total = buckets[-1][1] if buckets else 0
def q(p):
    for le, c in buckets:
        if total and c >= p * total:
            return le * 1000
    return None
consumed = m1.get("rankcast_bus_consumed_total", 0) - m0.get("rankcast_bus_consumed_total", 0)
dur, window = float(dur), prod["seconds"]
print(json.dumps({
    "build": build, "target_per_s": int(rate), "run": int(run),
    "sent_per_s": prod["sent_per_s"], "delivered": int(delivered),
    "consumed_in_window": int(consumed), "consumed_per_s": consumed / window,
    "lag_events_at_end": max(0, int(delivered) - (int(c_end) - int(m0.get("rankcast_bus_consumed_total", 0)))),
    "catchup_ms": int(catchup_ms), "lag_p50_ms": q(0.5), "lag_p99_ms": q(0.99),
    "node_cores": (float(n1) - float(n0)) / window, "broker_cores": (float(k1) - float(k0)) / window,
    "producer_cores": prod["cpu_s"] / window,
    "node_us_per_event": (float(n1) - float(n0)) * 1e6 / max(consumed, 1),
}))
EOF
    stop_node
    echo "run-remote-ingest: $tag: $(cat "$RESULTS_DIR/remote-ingest-$stamp-$tag.json")" >&2
}

builds=(new)
[[ -z $BASE_BIN ]] || builds=(base new)
# order RUN: the builds in the order of run RUN (flipped every other run: neither build
# always goes first).
order() {
    if (($1 % 2 == 0)) && ((${#builds[@]} == 2)); then
        echo new base
    else
        echo "${builds[@]}"
    fi
}
if ((REPLAY_EVENTS > 0)); then
    for run in $(seq 1 "$RUNS"); do
        for b in $(order "$run"); do replay "$b" "$run"; done
    done
fi
for rate in $RATES; do
    for run in $(seq 1 "$RUNS"); do
        for b in $(order "$run"); do step "$b" "$rate" "$run"; done
    done
done

commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
NPROC=$(nproc) CPU_MODEL=$cpu_model KERNEL=$(uname -r) COMMIT=$commit \
    DATE=$(date -u '+%Y-%m-%d %H:%M UTC') SETTINGS="PRODUCERS=$PRODUCERS USERS=$USERS \
DURATION_S=$DURATION_S RUNS=$RUNS, producer linger $LINGER_MS ms, compression $COMPRESSION; \
new: $SERVER_BIN; base: ${BASE_BIN:-none}" CATCHUP_MAX_MS=$CATCHUP_MAX_MS LAG_P99_MAX_MS=$LAG_P99_MAX_MS \
    python3 - "$RESULTS_DIR" "$stamp" >"$RESULTS_DIR/remote-ingest-$stamp.md" <<'EOF'
import glob, json, os, statistics, sys
results_dir, stamp = sys.argv[1:]
all_rows = [json.load(open(p)) for p in glob.glob(f"{results_dir}/remote-ingest-{stamp}-*.json")]
rows = [r for r in all_rows if not r.get("replay")]
replays = [r for r in all_rows if r.get("replay")]
med = lambda xs: statistics.median(xs) if xs else None
fmt = lambda v, d=0: "–" if v is None else f"{v:,.{d}f}"
e = os.environ
print(f"# Remote ingestion, {e['DATE']}\n")
print(f"Machine: {e['NPROC']} × {e['CPU_MODEL']}, kernel {e['KERNEL']}; commit {e['COMMIT']}.")
print(f"Settings: {e['SETTINGS']}. Medians of the runs; a step is kept up with when the producer "
      f"sent ≥ 95 % of the rate, the node caught up within {e['CATCHUP_MAX_MS']} ms after it "
      f"stopped and the node's lag p99 ≤ {e['LAG_P99_MAX_MS']} ms (every run).\n")
print("| build | target/s | sent/s | consumed/s | lag at end (events) | catch-up ms | lag p50 ms | "
      "lag p99 ms | node cores | node µs/event | broker cores | producer cores | kept up |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for rate in sorted({r["target_per_s"] for r in rows}):
    for build in ("base", "new"):
        rs = [r for r in rows if r["target_per_s"] == rate and r["build"] == build]
        if not rs:
            continue
        ok = all(r["sent_per_s"] >= 0.95 * rate and 0 <= r["catchup_ms"] <= int(e["CATCHUP_MAX_MS"])
                 and (r["lag_p99_ms"] or 0) <= int(e["LAG_P99_MAX_MS"]) for r in rs)
        m = lambda k: med([r[k] for r in rs if r[k] is not None])
        print(f"| {build} | {rate:,} | {fmt(m('sent_per_s'))} | {fmt(m('consumed_per_s'))} | "
              f"{fmt(m('lag_events_at_end'))} | {fmt(m('catchup_ms'))} | {fmt(m('lag_p50_ms'), 1)} | "
              f"{fmt(m('lag_p99_ms'), 1)} | {fmt(m('node_cores'), 3)} | {fmt(m('node_us_per_event'), 1)} | "
              f"{fmt(m('broker_cores'), 3)} | {fmt(m('producer_cores'), 3)} | {'yes' if ok else 'no'} |")
if replays:
    print("\nHistory replay: a fresh node learns the events written before it started "
          "(--kafka-replay-h), start to /readyz 200; its CPU over that whole time.\n")
    print("| build | events | start → ready ms | events/s | node µs/event | runs |")
    print("|---|---|---|---|---|---|")
    for build in ("base", "new"):
        rs = [r for r in replays if r["build"] == build]
        if rs:
            m = lambda k: med([r[k] for r in rs])
            print(f"| {build} | {fmt(m('events'))} | {fmt(m('ready_ms'))} | {fmt(m('events_per_s'))} | "
                  f"{fmt(m('node_us_per_event'), 1)} | {len(rs)} |")
EOF

cat "$RESULTS_DIR/remote-ingest-$stamp.md"

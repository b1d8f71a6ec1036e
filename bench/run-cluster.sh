#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Cross-node latency benchmark of a two-node rankcast cluster over a real Kafka broker: USERS
# users send RATE events/s each to node n1 and also listen, with the same user id, on node n2;
# the latency is from an event written on n1 to its `recs` read on n2. RUNS times, with fresh
# nodes and topics per run and one broker for all. THROUGHPUT=1 adds a pass that raises the
# rate until delivery lags. Builds nothing. Results go to bench/results/cluster-*.
set -euo pipefail

cd "$(dirname "$0")/.."

SERVER_BIN=${SERVER_BIN:-build/server/rankcast}
LOADGEN_BIN=${LOADGEN_BIN:-build/bench/rankcast-loadgen}
CATALOG=${CATALOG:-web-demo/catalog/demo-catalog.jsonl}
PORT1=${PORT1:-18490}
PORT2=${PORT2:-18491}
RUNS=${RUNS:-3}
USERS=${USERS:-200}
RATE=${RATE:-5}
WARMUP_S=${WARMUP_S:-5}
DURATION_S=${DURATION_S:-20}
SOURCES=${SOURCES:-4}
CONNECT_RATE=${CONNECT_RATE:-1000}
# After both /readyz answer 200, the script pauses SETTLE_S seconds (a fresh broker's
# idempotent producer needs a moment for its producer id), then sends probes (2 users, 1 s)
# until one's events are acked and their lists arrive on n2. Nodes that do not get there
# within BUS_READY_TIMEOUT_S are restarted, at most START_ATTEMPTS times in all: right after
# the broker started, a node has been seen to stay deaf to the bus for good.
SETTLE_S=${SETTLE_S:-2}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-60}
BUS_READY_TIMEOUT_S=${BUS_READY_TIMEOUT_S:-20}
START_ATTEMPTS=${START_ATTEMPTS:-3}
THROUGHPUT=${THROUGHPUT:-0}
TP_USERS=${TP_USERS:-500}
TP_RATES=${TP_RATES:-"2 5 10 20 40"}
TP_WARMUP_S=${TP_WARMUP_S:-3}
TP_DURATION_S=${TP_DURATION_S:-10}
# A throughput step lags when the cross-node p99 or n2's bus lag p99 exceeds this, when the
# generator could not send at the target rate, or when events were refused.
LAG_P99_MS=${LAG_P99_MS:-100}
RESULTS_DIR=${RESULTS_DIR:-bench/results}

die() {
    echo "run-cluster: $*" >&2
    exit 1
}

[[ -x $SERVER_BIN ]] || die "no server binary at $SERVER_BIN (build first: cmake --build build)"
[[ -x $LOADGEN_BIN ]] || die "no load generator at $LOADGEN_BIN (build first: cmake --build build)"
"$LOADGEN_BIN" --help | grep -- --observe-port >/dev/null ||
    die "$LOADGEN_BIN has no --observe-port: rebuild it (cmake --build build)"
"$SERVER_BIN" --help 2>&1 | grep -- --kafka-topic-prefix >/dev/null ||
    die "$SERVER_BIN has no Kafka bus (--kafka-topic-prefix): rebuild it"
[[ -r $CATALOG ]] || die "cannot read catalog $CATALOG"
[[ $RUNS =~ ^[0-9]{1,2}$ ]] || die "RUNS must be 0..99"
[[ $RUNS != 0 || $THROUGHPUT == 1 ]] || die "RUNS=0 measures nothing without THROUGHPUT=1"
for v in PORT1 PORT2 USERS TP_USERS WARMUP_S DURATION_S TP_WARMUP_S TP_DURATION_S SETTLE_S \
    READY_TIMEOUT_S BUS_READY_TIMEOUT_S START_ATTEMPTS LAG_P99_MS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
[[ $PORT1 != "$PORT2" ]] || die "PORT1 and PORT2 must differ"
command -v python3 >/dev/null || die "python3 is needed for the summary"
command -v curl >/dev/null || die "curl is needed to read /readyz and /metrics"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
work_dir=$(mktemp -d)
kafka_dir=""
declare -A node_pid=()
lg_pid=""
node_restarts=0
mkdir -p "$RESULTS_DIR"
# Every run uses these copies: a rebuild while the script runs cannot mix two servers.
cp "$SERVER_BIN" "$work_dir/rankcast"
cp "$LOADGEN_BIN" "$work_dir/rankcast-loadgen"
server_sha=$(sha256sum "$SERVER_BIN" | cut -c1-12)
SERVER_BIN=$work_dir/rankcast
LOADGEN_BIN=$work_dir/rankcast-loadgen

# pause S: sleep, but let a signal's trap run at once (bash runs traps only between commands,
# and a `wait` is interrupted where a foreground sleep is not).
pause() {
    sleep "$1" &
    wait $! || true
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# stop_nodes: SIGTERM to both nodes at once, SIGKILL to whichever still runs after 5 s (they
# drain their clients for up to 2 s first).
stop_nodes() {
    local name pid
    for pid in "${node_pid[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
        local alive=0
        for pid in "${node_pid[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 1 ]] || break
        sleep 0.1
    done
    for name in "${!node_pid[@]}"; do
        kill -KILL "${node_pid[$name]}" 2>/dev/null || true
        wait "${node_pid[$name]}" 2>/dev/null || true
        unset "node_pid[$name]"
    done
}

cleanup() {
    # timeout(1) passes the signal on to the generator, which reports and exits.
    if [[ -n $lg_pid ]]; then
        kill -INT "$lg_pid" 2>/dev/null || true
        wait "$lg_pid" 2>/dev/null || true
    fi
    stop_nodes
    if [[ -n $kafka_dir ]]; then
        scripts/kafka stop --dir "$kafka_dir" --timeout 20 >/dev/null 2>&1 || true
    fi
    rm -rf "$work_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for p in "$PORT1" "$PORT2"; do
    ! port_in_use "$p" || die "port $p is already in use (set PORT1/PORT2)"
done

# --owner $$: the broker goes away with this script even if the trap never runs (SIGKILL).
echo "run-cluster: starting a Kafka broker" >&2
kafka_env=$(scripts/kafka start --dir "$work_dir/kafka" --owner $$ --timeout 90) ||
    die "the Kafka broker did not start"
kafka_dir=$(sed -n 's/^KAFKA_DIR=//p' <<<"$kafka_env")
KAFKA_BOOTSTRAP=$(sed -n 's/^KAFKA_BOOTSTRAP=//p' <<<"$kafka_env")
KAFKA_PID=$(sed -n 's/^KAFKA_PID=//p' <<<"$kafka_env")
[[ -n $KAFKA_BOOTSTRAP && -n $kafka_dir ]] || die "scripts/kafka start printed no KAFKA_BOOTSTRAP"

# start_node NAME PORT TOPIC_PREFIX
start_node() {
    local name=$1 port=$2 prefix=$3
    port_in_use "$port" && die "port $port is already in use (set PORT1/PORT2)"
    "$SERVER_BIN" --port "$port" --listen 127.0.0.1 --anonymous --anonymous-ids chosen --max-conns-per-ip 0 --catalog "$CATALOG" \
        --kafka "$KAFKA_BOOTSTRAP" --pseudonym-key bench-cluster-key --node-id "$name" --kafka-topic-prefix "$prefix" \
        --log-level warn >"$work_dir/$name.log" 2>&1 &
    node_pid[$name]=$!
}

# wait_ready NAME PORT: /readyz 200 (listening and the bus usable), bounded.
wait_ready() {
    local name=$1 port=$2 code deadline=$((SECONDS + READY_TIMEOUT_S))
    while :; do
        if ! kill -0 "${node_pid[$name]}" 2>/dev/null; then
            tail -n 20 "$work_dir/$name.log" >&2 || true
            die "$name exited during start-up"
        fi
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)
        [[ $code == 200 ]] && return 0
        if ((SECONDS >= deadline)); then
            tail -n 20 "$work_dir/$name.log" >&2 || true
            die "$name not ready within ${READY_TIMEOUT_S}s (/readyz: $code)"
        fi
        sleep 0.2
    done
}

# show_bus_state: what the nodes and the broker say, when the bus does not carry events.
show_bus_state() {
    local name port
    for name in n1 n2; do
        port=$PORT1
        [[ $name == n2 ]] && port=$PORT2
        echo "run-cluster: $name /metrics (bus):" >&2
        curl -s -m 5 "http://127.0.0.1:$port/metrics" | grep -E '^rankcast_bus_[a-z_]+ ' >&2 || true
        echo "run-cluster: $name log:" >&2
        tail -n 5 "$work_dir/$name.log" >&2 || true
    done
    echo "run-cluster: broker log ($kafka_dir/logs/server.log), warnings and errors:" >&2
    grep -E 'WARN|ERROR' "$kafka_dir/logs/server.log" 2>/dev/null | tail -n 10 >&2 || true
}

# bus_carries_events: probes until an event sent to n1 is acked and its list arrives on n2;
# false after BUS_READY_TIMEOUT_S. Probe users are not the measured ones (the generator's pid
# is in the user id).
bus_carries_events() {
    local deadline=$((SECONDS + BUS_READY_TIMEOUT_S)) probes=0 answer
    while :; do
        probes=$((probes + 1))
        timeout --signal=INT --kill-after=5 40 "$LOADGEN_BIN" --port "$PORT1" \
            --observe-port "$PORT2" -n 2 --rate 5 --warmup 0 --duration 1 --drain-ms 1000 \
            --catalog "$CATALOG" --json-out "$work_dir/probe.json" >/dev/null 2>&1 || true
        answer=$(python3 -c 'import json, sys
e = json.load(open(sys.argv[1]))["events"]
print(e["acked"] > 0 and e["pushes_matched"] > 0)' "$work_dir/probe.json" 2>/dev/null || echo False)
        rm -f "$work_dir/probe.json"
        if [[ $answer == True ]]; then
            echo "run-cluster: the bus carries events (probe $probes)" >&2
            return 0
        fi
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}

# start_cluster PREFIX: both nodes ready and the bus carrying events between them.
start_cluster() {
    local prefix=$1 attempt
    for ((attempt = 1; attempt <= START_ATTEMPTS; attempt++)); do
        start_node n1 "$PORT1" "$prefix"
        start_node n2 "$PORT2" "$prefix"
        wait_ready n1 "$PORT1"
        wait_ready n2 "$PORT2"
        sleep "$SETTLE_S"
        bus_carries_events && return 0
        echo "run-cluster: no probe event was acked on n1 and pushed on n2 within" \
            "${BUS_READY_TIMEOUT_S}s (start attempt $attempt of $START_ATTEMPTS)" >&2
        show_bus_state
        stop_nodes
        node_restarts=$((node_restarts + 1))
    done
    die "the bus did not carry events between the nodes"
}

# cpu_s PID: user+system CPU seconds of a process so far (-1 if it is gone).
cpu_s() {
    awk -v tck="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / tck }' \
        "/proc/$1/stat" 2>/dev/null || echo -1
}

# run_step TAG USERS RATE WARMUP DURATION: one measurement against fresh nodes and topics.
# Writes RESULTS_DIR/cluster-STAMP-TAG.json (the generator's report) and
# cluster-STAMP-TAG.nodes.json (both nodes' /metrics excerpt and CPU); returns 1 on failure.
run_step() {
    local tag=$1 users=$2 rate=$3 warmup=$4 duration=$5
    local json="$RESULTS_DIR/cluster-$stamp-$tag.json"
    local prefix="bench${stamp}${tag//[^A-Za-z0-9]/}."
    start_cluster "$prefix"
    echo "run-cluster: $tag: $users users x $rate events/s, n1 pid ${node_pid[n1]} port $PORT1," \
        "n2 pid ${node_pid[n2]} port $PORT2, topics $prefix*" >&2
    local connect_s=$(((2 * users) / CONNECT_RATE + 30)) rc=0 name port
    timeout --signal=INT --kill-after=5 $((connect_s + warmup + duration + 20)) "$LOADGEN_BIN" \
        --port "$PORT1" --observe-port "$PORT2" -n "$users" --sources "$SOURCES" \
        --connect-rate "$CONNECT_RATE" --rate "$rate" --warmup "$warmup" --duration "$duration" \
        --catalog "$CATALOG" --server-pid "${node_pid[n1]}" --json-out "$json" \
        >/dev/null 2>"$work_dir/loadgen.err" &
    lg_pid=$!
    # The nodes' counters and histograms start with the node (probes and warmup included):
    # snapshot them when the measured window opens (connections ready + warmup) and again
    # after the generator's drain, and report the difference. CPU is sampled at the start and
    # the end of the measured window.
    local deadline=$((SECONDS + connect_s)) t0="" t1="" cpu=()
    while kill -0 "$lg_pid" 2>/dev/null && ! grep -q 'connections ready' "$work_dir/loadgen.err" &&
        ((SECONDS < deadline)); do
        sleep 0.05
    done
    if kill -0 "$lg_pid" 2>/dev/null; then
        pause "$warmup"
        t0=$(date +%s.%N)
        cpu+=("$(cpu_s "${node_pid[n1]}")" "$(cpu_s "${node_pid[n2]}")" "$(cpu_s "$KAFKA_PID")")
        for name in n1 n2; do
            port=$PORT1
            [[ $name == n2 ]] && port=$PORT2
            curl -s -m 5 "http://127.0.0.1:$port/metrics" >"$work_dir/$name.start.prom" || true
        done
        pause "$duration"
        t1=$(date +%s.%N)
        cpu+=("$(cpu_s "${node_pid[n1]}")" "$(cpu_s "${node_pid[n2]}")" "$(cpu_s "$KAFKA_PID")")
        curl -s -m 5 "http://127.0.0.1:$PORT2/metrics" >"$work_dir/n2.window-end.prom" || true
    fi
    wait "$lg_pid" || rc=$?
    lg_pid=""
    sed 's/^/    /' "$work_dir/loadgen.err" >&2
    for name in n1 n2; do
        port=$PORT1
        [[ $name == n2 ]] && port=$PORT2
        curl -s -m 5 "http://127.0.0.1:$port/metrics" >"$work_dir/$name.end.prom" || true
    done
    if [[ -n $t1 ]]; then
        python3 - "$work_dir" "$RESULTS_DIR/cluster-$stamp-$tag.nodes.json" "$t0" "$t1" \
            "${cpu[@]}" "$duration" <<'EOF'
import json, os, re, sys
work, out = sys.argv[1], sys.argv[2]
t0, t1, c1a, c2a, cka, c1b, c2b, ckb, duration = map(float, sys.argv[3:12])
line_re = re.compile(r'^([a-z_]+)(?:\{le="([^"]+)"\})? ([0-9.eE+-]+)$')

def scrape(path):
    """Unlabelled samples, and histogram buckets as {name: [(le_seconds, cumulative)]}."""
    metrics, buckets = {}, {}
    if not os.path.exists(path):
        return metrics, buckets
    for line in open(path):
        m = line_re.match(line.strip())
        if not m:
            continue
        name, le, value = m.group(1), m.group(2), float(m.group(3))
        if le is None:
            metrics[name] = value
        else:
            buckets.setdefault(name, []).append((float("inf") if le == "+Inf" else float(le), value))
    return metrics, buckets

def hist(start, end, name):
    """Count, mean and quantiles (upper bound of their bucket) of end - start."""
    (m0, b0), (m1, b1) = start, end
    before = dict(b0.get(name + "_bucket", []))
    cum = [(le, c - before.get(le, 0)) for le, c in b1.get(name + "_bucket", [])]
    count = m1.get(name + "_count", 0) - m0.get(name + "_count", 0)
    res = {"count": int(count), "mean_ms": None, "p50_le_ms": None, "p90_le_ms": None,
           "p99_le_ms": None, "p999_le_ms": None, "buckets_le_ms": {}}
    if count <= 0:
        return res
    res["mean_ms"] = round(1000 * (m1.get(name + "_sum", 0) - m0.get(name + "_sum", 0)) / count, 3)
    prev = 0
    for le, c in cum:
        if c > prev:
            res["buckets_le_ms"]["+Inf" if le == float("inf") else f"{le * 1000:g}"] = int(c - prev)
        prev = c
    for key, q in (("p50_le_ms", .5), ("p90_le_ms", .9), ("p99_le_ms", .99), ("p999_le_ms", .999)):
        for le, c in cum:
            if c >= q * count:
                res[key] = None if le == float("inf") else round(le * 1000, 3)
                break
    return res

window = t1 - t0
report = {"window_s": round(window, 3), "nodes": {},
          "note": "histograms and counters: from the start of the measured window to after the "
                  "generator's drain; CPU: over the measured window; a quantile is the upper "
                  "bound of its bucket, null when it lies beyond the last finite bucket (1 s)"}
for name, (a, b) in (("n1", (c1a, c1b)), ("n2", (c2a, c2b)), ("kafka", (cka, ckb))):
    entry = {"cpu_cores": round((b - a) / window, 3) if a >= 0 and b >= 0 else None}
    if name != "kafka":
        start = scrape(os.path.join(work, name + ".start.prom"))
        end = scrape(os.path.join(work, name + ".end.prom"))
        entry["remote_event_lag"] = hist(start, end, "rankcast_bus_remote_event_lag_seconds")
        entry["event_to_push"] = hist(start, end, "rankcast_event_to_push_seconds")
        for k in ("published", "delivered", "delivery_errors", "consumed"):
            metric = f"rankcast_bus_{k}_total"
            entry["bus_" + k] = int(end[0].get(metric, 0) - start[0].get(metric, 0))
        if name == "n2":
            # What the bus carried to n2 during the measured window itself (the totals above
            # also hold the drain, when a node that fell behind catches up).
            mid = scrape(os.path.join(work, "n2.window-end.prom"))
            consumed = mid[0].get("rankcast_bus_consumed_total", 0) - \
                start[0].get("rankcast_bus_consumed_total", 0)
            entry["bus_consumed_in_window"] = int(consumed)
            entry["bus_consumed_per_s"] = round(consumed / window, 1)
        entry["bus_queued_at_end"] = int(end[0].get("rankcast_bus_queued_messages", 0))
        entry["bus_up_at_end"] = int(end[0].get("rankcast_bus_up", 0))
    report["nodes"][name] = entry
with open(out, "w") as f:
    json.dump(report, f, indent=1)
EOF
    fi
    stop_nodes
    for name in n1 n2; do
        if [[ -s $work_dir/$name.log ]]; then
            cp "$work_dir/$name.log" "$RESULTS_DIR/cluster-$stamp-$tag.$name.log"
        fi
    done
    if [[ $rc != 0 ]]; then
        echo "run-cluster: $tag: the load generator failed (exit $rc)" >&2
        return 1
    fi
}

failed_runs=0
for run in $(seq 1 "$RUNS"); do
    run_step "run$run" "$USERS" "$RATE" "$WARMUP_S" "$DURATION_S" || failed_runs=$((failed_runs + 1))
done

# The throughput pass: the same set-up with TP_USERS users, one step per rate in TP_RATES,
# until a step lags.
tp_steps=()
if [[ $THROUGHPUT == 1 ]]; then
    for r in $TP_RATES; do
        [[ $r =~ ^[0-9]+([.][0-9]+)?$ ]] || die "TP_RATES holds '$r', not a rate"
        tag="tp-rate$r"
        tp_steps+=("$tag")
        run_step "$tag" "$TP_USERS" "$r" "$TP_WARMUP_S" "$TP_DURATION_S" || break
        lagging=$(python3 - "$RESULTS_DIR/cluster-$stamp-$tag" "$LAG_P99_MS" <<'EOF'
import json, sys
base, limit = sys.argv[1], float(sys.argv[2])
r = json.load(open(base + ".json"))
n = json.load(open(base + ".nodes.json"))["nodes"]
why = []
if r["latency_ms"]["p99"] > limit:
    why.append(f'cross-node p99 {r["latency_ms"]["p99"]:.1f} ms')
lag = n["n2"]["remote_event_lag"]["p99_le_ms"]
if lag is None or lag > limit:
    why.append(f'n2 bus lag p99 > {limit:g} ms')
if r["rate"]["achieved_events_per_s"] < 0.95 * r["rate"]["target_events_per_s"]:
    why.append("generator below 95 % of the target rate")
if r["events"]["errored"] or r["events"]["unanswered"]:
    why.append(f'{r["events"]["errored"]} refused, {r["events"]["unanswered"]} unanswered')
print("; ".join(why))
EOF
        )
        if [[ -n $lagging ]]; then
            echo "run-cluster: $tag lags ($lagging): stopping the throughput pass" >&2
            break
        fi
    done
fi

cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
[[ -n $cpu_model ]] || cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
commit=$(git describe --always --dirty 2>/dev/null || echo "unknown")
summary="$RESULTS_DIR/cluster-$stamp.md"
kafka_version=$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' scripts/kafka-pom.xml)

NPROC=$(nproc) CPU_MODEL=$cpu_model KERNEL=$(uname -r) DATE=$(date -u '+%Y-%m-%d %H:%M UTC') \
    COMMIT=$commit KAFKA_VERSION=$kafka_version LAG_P99_MS=$LAG_P99_MS SERVER_SHA=$server_sha \
    NODE_RESTARTS=$node_restarts \
    python3 - "$summary" "$stamp" "$RESULTS_DIR" "$RUNS" "${tp_steps[@]}" <<'EOF'
import json, os, statistics, sys

summary_path, stamp, results_dir, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tp_tags = sys.argv[5:]

def load(tag):
    base = os.path.join(results_dir, f"cluster-{stamp}-{tag}")
    if not (os.path.exists(base + ".json") and os.path.exists(base + ".nodes.json")):
        return None
    with open(base + ".json") as f, open(base + ".nodes.json") as g:
        return json.load(f), json.load(g)["nodes"]

def fmt(v, spec=".1f"):
    return "n/a" if v is None else format(v, spec)

def bound(h, key):
    """A bucket quantile: None without data, inf beyond the last finite bucket (1 s)."""
    if not h["count"]:
        return None
    return float("inf") if h[key] is None else h[key]

def fmt_le(v):
    if v is None:
        return "n/a"
    return "> 1000" if v == float("inf") else f"≤{v:g}"

def row(r, n):
    e, l, loc = r["events"], r["latency_ms"], r["local_latency_ms"]
    lag1, lag2 = n["n1"]["remote_event_lag"], n["n2"]["remote_event_lag"]
    return {
        "users": f'{r["connections"]["users_open"]}/{r["connections"]["users"]}',
        "sent": e["sent"], "rate": r["rate"]["achieved_events_per_s"],
        "target": r["rate"]["target_events_per_s"],
        "errors": sum(e["errors_by_code"].values()), "unanswered": e["unanswered"],
        "acked": 100.0 * e["acked"] / e["sent"] if e["sent"] else 0,
        "pushed": 100.0 * e["pushes_matched_ratio"],
        "cross_per_s": e["pushes_matched"] / r["rate"]["measured_s"] if r["rate"]["measured_s"] else 0,
        "p50": l["p50"], "p90": l["p90"], "p99": l["p99"], "p999": l["p999"], "max": l["max"],
        "local_p50": loc["p50"], "local_p99": loc["p99"],
        "lag2_count": lag2["count"], "lag2_mean": lag2["mean_ms"],
        "lag2_p50": bound(lag2, "p50_le_ms"), "lag2_p99": bound(lag2, "p99_le_ms"),
        "lag1_count": lag1["count"],
        "consumed_per_s": n["n2"].get("bus_consumed_per_s"),
        "n1_cores": n["n1"]["cpu_cores"], "n2_cores": n["n2"]["cpu_cores"],
        "kafka_cores": n["kafka"]["cpu_cores"],
        "lg_cores": r["machine"]["loadgen_cores_measured"],
        "busy": r["machine"]["busy_cores_measured"],
    }

reports = [(run, load(f"run{run}")) for run in range(1, runs + 1)]
reports = [(run, x) for run, x in reports if x is not None]
tp = [(tag, load(tag)) for tag in tp_tags]
tp = [(tag, x) for tag, x in tp if x is not None]
if not reports and not tp:
    sys.exit("run-cluster: no run produced a report")

rows = [(run, row(*x)) for run, x in reports]
def median(key):
    vals = [x[key] for _, x in rows if x[key] is not None]
    if not vals:
        return None
    # A bucket bound is only meaningful as one of the bounds: never average two of them.
    return statistics.median_high(vals) if key.startswith("lag2_p") else statistics.median(vals)

lines = [f"# rankcast cross-node (Kafka) benchmark, {stamp}", ""]
if reports:
    cfg = reports[0][1][0]["config"]
    lines += [
        f"Scenario: two rankcast nodes (n1, n2) and one Kafka {os.environ['KAFKA_VERSION']} broker "
        "(KRaft, one node, replication 1) on this machine. "
        f"{cfg['connections']} users x {cfg['rate_per_conn_per_s']:g} events/s "
        f"({cfg['connections'] * cfg['rate_per_conn_per_s']:g} events/s) sent to n1; every user "
        "also holds a connection with the same user id to n2 that only listens. "
        f"{cfg['duration_s']:g} s measured after {cfg['warmup_s']:g} s warmup, fresh nodes and "
        "topics per run. **Cross-node latency**: event frame written to n1 to the `recs` it "
        "caused read on n2 (client-side, CLOCK_MONOTONIC). Local: the same event's `recs` on n1.",
        "",
    ]
lines += [
    "Machine: {NPROC} CPUs, {CPU_MODEL}, Linux {KERNEL}; date {DATE}; commit {COMMIT}; server "
    "binary sha256 {SERVER_SHA}…; nodes restarted before measuring because the bus did not "
    "carry probe events: {NODE_RESTARTS} time(s).".format(**os.environ), ""]

def table(rows_, first):
    out = [
        f"| {first} | users open | events/s sent | errors | acked % | n2 got recs % | cross p50 ms "
        "| p90 | **p99** | p99.9 | max | local p50 ms | local p99 | n2 bus lag: count, mean ms "
        "| bus lag p50 / p99 (bucket) ms | n1 / n2 / Kafka / loadgen CPU cores | machine busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, x in rows_:
        out.append(
            f"| {key} | {x['users']} | {x['rate']:.1f} | {x['errors']} | {x['acked']:.1f} "
            f"| {x['pushed']:.1f} "
            f"| {x['p50']:.3f} | {x['p90']:.3f} | {x['p99']:.3f} | {x['p999']:.3f} "
            f"| {x['max']:.3f} | {x['local_p50']:.3f} | {x['local_p99']:.3f} "
            f"| {x['lag2_count']}, {fmt(x['lag2_mean'], '.2f')} "
            f"| {fmt_le(x['lag2_p50'])} / {fmt_le(x['lag2_p99'])} "
            f"| {fmt(x['n1_cores'], '.2f')} / {fmt(x['n2_cores'], '.2f')} / "
            f"{fmt(x['kafka_cores'], '.2f')} / {fmt(x['lg_cores'], '.2f')} | {fmt(x['busy'], '.2f')} |")
    return out

if rows:
    lines += table(rows, "run")
    lines.append(
        f"| **median** | | {median('rate'):.1f} | | {median('acked'):.1f} | {median('pushed'):.1f} "
        f"| **{median('p50'):.3f}** | {median('p90'):.3f} | **{median('p99'):.3f}** "
        f"| **{median('p999'):.3f}** | {median('max'):.3f} | {median('local_p50'):.3f} "
        f"| {median('local_p99'):.3f} | {median('lag2_count'):.0f}, {fmt(median('lag2_mean'), '.2f')} "
        f"| {fmt_le(median('lag2_p50'))} / {fmt_le(median('lag2_p99'))} | | |")
    lines += [
        "",
        "n2 bus lag is n2's `rankcast_bus_remote_event_lag_seconds` (n1 accepting an event to n2 "
        "applying it, wall clocks at millisecond resolution) from the start of the measured "
        "window to the end of the generator's drain; its quantiles are the upper bounds of the "
        "server's histogram buckets. n1 saw "
        + ", ".join(str(x["lag1_count"]) for _, x in rows)
        + " remote events (n2's users send nothing). CPU columns are cores (CPU seconds per "
        "second) during the measured window; machine busy counts every process on the machine.",
    ]
if tp:
    tp_rows = [(tag, row(*x)) for tag, x in tp]
    cfg = tp[0][1][0]["config"]
    lines += ["", "## Throughput pass", "",
              f"{cfg['connections']} users, one step per rate, {cfg['duration_s']:g} s measured "
              f"after {cfg['warmup_s']:g} s warmup, fresh nodes per step; stops at the first step "
              f"where the cross-node p99 or n2's bus-lag p99 exceeds {os.environ['LAG_P99_MS']} ms, "
              "the generator falls below 95 % of the target rate, or events are refused. When n2 "
              "falls behind it replaces queued lists by newer ones, so fewer events get their "
              "own list there (n2 got recs %) and the percentiles cover those only.", "",
              "| step | target events/s | sent events/s | n2 consumed from Kafka /s (window) "
              "| n2 got recs % | cross-node recs/s | cross p50 ms | **p99** ms "
              "| n2 bus lag p99 (bucket) ms | errors + unanswered "
              "| n1 / n2 / Kafka / loadgen CPU cores |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for tag, x in tp_rows:
        lines.append(
            f"| {tag} | {x['target']:.0f} | {x['rate']:.1f} | {fmt(x['consumed_per_s'])} "
            f"| {x['pushed']:.1f} | {x['cross_per_s']:.1f} | {x['p50']:.3f} | {x['p99']:.3f} "
            f"| {fmt_le(x['lag2_p99'])} | {x['errors'] + x['unanswered']} "
            f"| {fmt(x['n1_cores'], '.2f')} / {fmt(x['n2_cores'], '.2f')} / "
            f"{fmt(x['kafka_cores'], '.2f')} / {fmt(x['lg_cores'], '.2f')} |")
lines += ["", "Per-step reports: `cluster-" + stamp + "-<step>.json` (rankcast-loadgen) and "
          "`cluster-" + stamp + "-<step>.nodes.json` (both nodes' /metrics excerpt, CPU), not kept in "
          "git: each run of `bench/run-cluster.sh` writes its own."]
if len(reports) < runs:
    lines += ["", f"**{runs - len(reports)} of {runs} runs failed** and are not in the table."]
with open(summary_path, "w") as f:
    f.write("\n".join(lines) + "\n")
if rows:
    print(f"median over {len(rows)} run(s): cross-node p50 {median('p50'):.3f} ms, "
          f"p99 {median('p99'):.3f} ms, p99.9 {median('p999'):.3f} ms at {median('rate'):.1f} "
          f"events/s; n2 bus lag mean {fmt(median('lag2_mean'), '.2f')} ms, "
          f"p99 {fmt_le(median('lag2_p99'))} ms")
for tag, x in (tp_rows if tp else []):
    print(f"{tag}: {x['rate']:.0f} events/s sent, {fmt(x['consumed_per_s'], '.0f')}/s consumed "
          f"by n2, cross-node p99 {x['p99']:.1f} ms, n2 bus lag p99 {fmt_le(x['lag2_p99'])} ms")
print(f"summary: {summary_path}")
EOF

[[ $failed_runs -eq 0 ]] || die "$failed_runs of $RUNS runs failed"

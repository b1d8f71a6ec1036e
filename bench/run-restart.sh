#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Restart-to-ready over a long history (issue D): EVENTS [10000000] synthetic events
# (bench/make-history.py, the 100k-item catalog) written into a data directory's event log by
# rankcast-logfill, then TAIL [1000000] more after a snapshot. RUNS [3] times each, a fresh
# server on that directory, timed from its start to `listening` and to /readyz 200:
#   log       no snapshot: the whole log read back (warming while it listens);
#   snapshot  the snapshot of the first EVENTS, then the TAIL read back;
#   clean     after a clean stop: the snapshot it wrote, no log to read.
# Each SIGTERM writes a snapshot: its size, its time (written by a child process) and the part
# of it the loop was held (the fork) are reported too. Writes bench/results/restart-<stamp>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/env.sh
EVENTS=${EVENTS:-10000000}
TAIL=${TAIL:-1000000}
RUNS=${RUNS:-3}
PORT=${PORT:-18990}
FILL_BIN=${FILL_BIN:-build/bench/rankcast-logfill}
bench_ready run-restart
bench_begin restart
[[ -x $FILL_BIN ]] || { echo "run-restart: build first (ninja -C build)" >&2; exit 1; }
if ss -ltn | grep -q ":$PORT "; then echo "run-restart: port $PORT is taken" >&2; exit 1; fi

history=$work/history.tsv dir=$work/data keep=$work/keep
mkdir -p "$keep"
python3 bench/make-history.py --events $((EVENTS + TAIL)) --items 100000 --out "$history"
head -n "$EVENTS" "$history" >"$work/first.tsv"
tail -n +"$((EVENTS + 1))" "$history" >"$work/tail.tsv"
rm "$history"

# start_server LOG: a server on the data directory, in the background (pid in `pid`), and the
# milliseconds from its start to `listening` and to /readyz 200 in `listen_ms` and `ready_ms`.
start_server() {
    local log=$1 t0 now
    t0=$(date +%s%3N)
    "$SERVER_BIN" --port "$PORT" --listen 127.0.0.1 --catalog "$CATALOG" --data-dir "$dir" \
        --anonymous --log-level info >"$log" 2>&1 &
    pid=$!
    listen_ms="" ready_ms=""
    for _ in $(seq 1 12000); do
        now=$(date +%s%3N)
        if [[ -z $listen_ms ]] && grep -q 'msg="listening"' "$log"; then listen_ms=$((now - t0)); fi
        if [[ -n $listen_ms ]] &&
            [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz") == 200 ]]; then
            ready_ms=$((now - t0))
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.05
    done
    echo "run-restart: not ready in 10 minutes" >&2
    exit 1
}

# stop_server LOG: SIGTERM, then the snapshot it wrote: `snap_s` seconds, `snap_bytes`, and
# `snap_loop_ms` the loop was held.
stop_server() {
    local line
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
    snap_s=- snap_bytes=- snap_loop_ms=- # none written when nothing moved since the one read
    line=$(grep 'msg="snapshot written"' "$1" | tail -1) || return 0
    snap_s=$(sed -E 's/.*seconds=([0-9.]+).*/\1/' <<<"$line")
    snap_bytes=$(sed -E 's/.* bytes=([0-9]+).*/\1/' <<<"$line")
    snap_loop_ms=$(sed -E 's/.*loop_ms=([0-9.]+).*/\1/' <<<"$line")
}

rss_mb() { echo $(($(awk '/VmRSS/ {print $2}' "/proc/$pid/status") / 1024)); }

read_back() { grep -o 'msg="event log read back".*' "$1" | grep -oE 'records=[0-9]+ in_snapshot=[0-9]+'; }

fill=$("$FILL_BIN" "$dir" "$work/first.tsv")
echo "run-restart: $fill"
start_server "$work/first.log"
stop_server "$work/first.log"
cp "$dir"/snapshot-*.snap "$keep/"
fill=$("$FILL_BIN" "$dir" "$work/tail.tsv")
echo "run-restart: tail $fill"
log_bytes=$(du -cb "$dir"/events-*.log | tail -1 | cut -f1)

rows=()
for run in $(seq 1 "$RUNS"); do
    for case in log snapshot clean; do
        case $case in
            log) rm -f "$dir"/snapshot-*.snap ;;
            snapshot) rm -f "$dir"/snapshot-*.snap && cp "$keep"/snapshot-*.snap "$dir/" ;;
            clean) ;; # the snapshot the previous stop wrote
        esac
        log=$work/$case-$run.log
        start_server "$log"
        rss=$(rss_mb)
        stop_server "$log"
        rows+=("$case $run $listen_ms $ready_ms $rss $snap_s $snap_loop_ms $snap_bytes $(read_back "$log")")
        echo "run-restart: ${rows[-1]}"
    done
done

median() { sort -n | sed -n "$(((RUNS + 1) / 2))p"; }
{
    echo "# Restart to ready, $stamp"
    echo
    echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
        "$(git rev-parse --short HEAD). $EVENTS + $TAIL events of bench/make-history.py over the" \
        "100k-item catalog, written by rankcast-logfill ($((log_bytes / 1048576)) MiB of log);" \
        "\`bench/run-restart.sh\` (RUNS=$RUNS). Times from the process's start."
    echo
    echo "| case | run | listening ms | /readyz 200 ms | RSS MiB | snapshot at stop s | of which the loop ms | snapshot bytes | read back |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for r in "${rows[@]}"; do
        read -r c n l rd rs ss sl sb rb <<<"$r"
        echo "| $c | $n | $l | $rd | $rs | $ss | $sl | $sb | $rb |"
    done
    echo
    echo "| case | median /readyz 200 ms | median snapshot at stop s | median of which the loop ms |"
    echo "|---|---|---|---|"
    for c in log snapshot clean; do
        m=$(printf '%s\n' "${rows[@]}" | awk -v c="$c" '$1 == c {print $4}' | median)
        s=$(printf '%s\n' "${rows[@]}" | awk -v c="$c" '$1 == c {print $6}' | median)
        l=$(printf '%s\n' "${rows[@]}" | awk -v c="$c" '$1 == c {print $7}' | median)
        echo "| $c | $m | $s | $l |"
    done
} >"$out"
cat "$out"

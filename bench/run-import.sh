#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Learning from history (--import): a synthetic history of EVENTS [2000000] events over the
# 100k-item catalog (bench/make-history.py) learned by a fresh server pinned to one core,
# RUNS [3] times; the server logs the events/s of the import itself (not the catalog load).
# Writes bench/results/import-<stamp>.md with each run and the median. Target: 500,000
# events/s on one core (issue Q).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/env.sh
EVENTS=${EVENTS:-2000000}
RUNS=${RUNS:-3}
CORE=${CORE:-0}
bench_ready run-import
bench_begin import
history=$work/history.tsv
python3 bench/make-history.py --events "$EVENTS" --items 100000 --out "$history"
rates=()
for run in $(seq 1 "$RUNS"); do
    log=$work/server-$run.log
    taskset -c "$CORE" "$SERVER_BIN" --port 0 --listen 127.0.0.1 --anonymous --anonymous-ids chosen \
        --catalog "$CATALOG" --import "$history" --log-level info >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do
        grep -q 'msg="listening"' "$log" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
    line=$(grep 'msg="history imported"' "$log") || { cat "$log" >&2; exit 1; }
    rates+=("$(sed -E 's/.*events_per_s=([0-9]+).*/\1/' <<<"$line")")
    echo "run-import: run $run: $line"
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")
{
    echo "# Learning from history, $stamp"
    echo
    echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
        "server pinned to core $CORE. $EVENTS synthetic events (bench/make-history.py) over" \
        "the 100k-item catalog, learned by \`rankcast --import\` at start."
    echo
    echo "| run | events/s |"
    echo "|---|---|"
    for i in "${!rates[@]}"; do echo "| $((i + 1)) | ${rates[$i]} |"; done
    echo "| **median** | **$median** |"
} >"$out"
cat "$out"

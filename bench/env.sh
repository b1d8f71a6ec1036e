# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Sourced by the bench scripts, from the repository root: the binaries, catalog and results
# directory they share, each taken from the environment when set there.
SERVER_BIN=${SERVER_BIN:-build/server/rankcast}
LOADGEN_BIN=${LOADGEN_BIN:-build/bench/rankcast-loadgen}
CATALOG=${CATALOG:-build/bench/catalog-100k.jsonl}
RESULTS_DIR=${RESULTS_DIR:-bench/results}

# bench_ready NAME: stops with a message unless both binaries are built; writes the 100k-item
# catalog when it is missing; makes the results directory.
bench_ready() {
    if [[ ! -x $SERVER_BIN || ! -x $LOADGEN_BIN ]]; then
        echo "$1: build first (ninja -C build), or set SERVER_BIN and LOADGEN_BIN" >&2
        exit 1
    fi
    [[ -s $CATALOG ]] || python3 bench/make-catalog.py --items 100000 --out "$CATALOG"
    mkdir -p "$RESULTS_DIR"
}

# bench_begin NAME: sets `stamp`, `out` (RESULTS_DIR/NAME-<stamp>.md) and `work` (a fresh
# temporary directory) for the script, and on exit kills the server whose pid is in `pid`,
# if any, and removes `work`.
bench_begin() {
    # shellcheck disable=SC2034 # read by the scripts that source this file
    stamp=$(date -u +%Y%m%dT%H%M%SZ) out="$RESULTS_DIR/$1-$stamp.md"
    work=$(mktemp -d)
    pid=""
    trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
}

# bench_wait_port PORT: waits up to 30 s for a listener on 127.0.0.1:PORT.
bench_wait_port() {
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

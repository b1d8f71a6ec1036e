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

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Side-by-side benchmark: rankcast, the Node `ws` peer and the Socket.IO peer (bench/peers/),
# every scenario against each in one run: idle memory, event->push latency, maximum sustained
# events/s, push-API fan-out, handshakes/s (ws, and wss where the server has TLS) and the
# effect of stalled clients. About 10 minutes with the defaults; settings in bench/README.md.
# Builds nothing: build first (ninja -C build). Results: bench/results/compare-<stamp>.*
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER_BIN=${SERVER_BIN:-build/server/rankcast}
LOADGEN_BIN=${LOADGEN_BIN:-build/bench/rankcast-loadgen}
CATALOG=${CATALOG:-build/bench/catalog-100k.jsonl}
export SERVER_BIN LOADGEN_BIN CATALOG

die() {
    echo "run-compare: $*" >&2
    exit 1
}
[[ -x $SERVER_BIN ]] || die "no server binary at $SERVER_BIN (build first, or set SERVER_BIN)"
[[ -x $LOADGEN_BIN ]] || die "no load generator at $LOADGEN_BIN (build first, or set LOADGEN_BIN)"
for src in bench/loadgen/*.[ch]; do
    [[ $LOADGEN_BIN -nt $src ]] || die "$LOADGEN_BIN is older than $src: rebuild"
done
command -v node >/dev/null || die "node is needed for the peers (scripts/setup)"
command -v python3 >/dev/null || die "python3 is needed"
command -v openssl >/dev/null || die "openssl is needed for the wss certificate"
# The peers' npm packages are pinned in bench/peers/package-lock.json; scripts/setup installs
# them, and so does this line when they are missing or older than the lock file.
if [[ ! -d bench/peers/node_modules || bench/peers/package-lock.json -nt bench/peers/node_modules ]]; then
    (cd bench/peers && npm ci --no-audit --no-fund --loglevel=error)
fi
if [[ ! -s $CATALOG ]]; then
    python3 bench/make-catalog.py --items 100000 --out "$CATALOG"
fi
# Bounded as a whole: the scenarios bound themselves, this is the backstop.
exec timeout --signal=INT --kill-after=30 "${COMPARE_TIMEOUT_S:-1800}" python3 bench/compare.py

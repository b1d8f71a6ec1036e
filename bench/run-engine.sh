#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The engine's time per event under random traffic (rankcast-enginebench): learn one event
# and rank one k = 20 list, on the synthetic 100k-item catalog and on the demo catalog, RUNS
# times each; the medians of the runs' p50 / p99 / p99.9. With BASE_BIN (another build of
# rankcast-enginebench, e.g. of the commit before a change), the two alternate run by run on
# the same machine, and the lists they ranked are compared by hash. Then the engine shared by
# threads (--readers N, engine/shared.h) for each N of READERS on the first catalog: each
# reader thread's time per event and per rank, and the writer's time per op.
#
#   bench/run-engine.sh                                   # ~1.5 min
#   BASE_BIN=/tmp/enginebench-before bench/run-engine.sh  # before and after, ~3 min
#
# Settings (environment): BIN [build/bench/rankcast-enginebench], BASE_BIN [none], RUNS [3],
# USERS [1000], WARMUP [300000] events learned first (not timed), EVENTS [100000] timed,
# K [20], READERS ["1 2"] ("" skips the shared engine), CATALOGS ["build/bench/catalog-100k.jsonl web-demo/catalog/demo-catalog.jsonl"],
# RESULTS_DIR [bench/results].
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-build/bench/rankcast-enginebench}
BASE_BIN=${BASE_BIN:-}
RUNS=${RUNS:-3}
USERS=${USERS:-1000}
WARMUP=${WARMUP:-300000}
EVENTS=${EVENTS:-100000}
K=${K:-20}
CATALOGS=${CATALOGS:-"build/bench/catalog-100k.jsonl web-demo/catalog/demo-catalog.jsonl"}
RESULTS_DIR=${RESULTS_DIR:-bench/results}
READERS=${READERS-1 2}

for b in "$BIN" ${BASE_BIN:+"$BASE_BIN"}; do
  if [ ! -x "$b" ]; then
    echo "run-engine: $b is missing (build first: cmake --build build --target rankcast-enginebench)" >&2
    exit 1
  fi
done
if [[ " $CATALOGS " == *" build/bench/catalog-100k.jsonl "* ]] && [ ! -s build/bench/catalog-100k.jsonl ]; then
  python3 bench/make-catalog.py --items 100000 --out build/bench/catalog-100k.jsonl
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT

# One run: a JSON line tagged with the build and the catalog. Bounded in time.
run_one() { # label bin catalog run
  timeout 600 "$2" --catalog "$3" --users "$USERS" --warmup "$WARMUP" --events "$EVENTS" \
    --k "$K" --json | sed "s|^{|{\"build\":\"$1\",\"run\":$4,|" >>"$raw/runs.jsonl"
}

for cat in $CATALOGS; do
  for run in $(seq 1 "$RUNS"); do
    echo "run-engine: $(basename "$cat") run $run/$RUNS" >&2
    [ -n "$BASE_BIN" ] && run_one base "$BASE_BIN" "$cat" "$run"
    run_one this "$BIN" "$cat" "$run"
  done
done

first_cat=${CATALOGS%% *}
touch "$raw/readers.jsonl"
for n in $READERS; do
  for run in $(seq 1 "$RUNS"); do
    echo "run-engine: --readers $n run $run/$RUNS" >&2
    timeout 600 "$BIN" --catalog "$first_cat" --users "$USERS" --warmup "$WARMUP" \
      --events "$EVENTS" --k "$K" --readers "$n" --json |
      sed "s|^{|{\"run\":$run,|" >>"$raw/readers.jsonl"
  done
done

out="$RESULTS_DIR/engine-$stamp.md"
python3 - "$raw/runs.jsonl" "$out" "$BIN" "${BASE_BIN:-}" "$raw/readers.jsonl" <<'EOF'
import json, os, platform, statistics, subprocess, sys
runs_path, out, bin_this, bin_base, readers_path = sys.argv[1:6]
runs = [json.loads(l) for l in open(runs_path)]
shared = [json.loads(l) for l in open(readers_path)]
def med(rs, part, q):
    return statistics.median(r[part][q] for r in rs)
lines = ["# Engine time per event (bench/run-engine.sh)", ""]
try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
except OSError:
    commit = "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
load = open("/proc/loadavg").read().split()[:3]
r0 = runs[0]
lines.append(f"Random traffic: {r0['users']} users, a uniformly random item per event, kinds "
             f"view/click/cart in turn; {r0['warmup']} events learned first, then "
             f"{r0['events']} timed, each learned and one k = {r0['k']} list ranked. Medians "
             f"of {max(r['run'] for r in runs)} runs, µs per event.")
lines.append("")
lines.append(f"Machine: {os.cpu_count()} CPUs, {cpu}, Linux {platform.release()}; load average "
             f"{' '.join(load)} at the end; commit {commit}; `{bin_this}`"
             + (f" against `{bin_base}` (base), alternated run by run" if bin_base else "") + ".")
lines.append("")
lines.append("| catalog | build | engine p50 | p99 | p99.9 | learn p50 | rank p50 | rank p99 | runs' engine p50 | lists |")
lines.append("|---|---|---|---|---|---|---|---|---|---|")
for cat in dict.fromkeys(r["catalog"] for r in runs):
    hashes = {r["build"]: r["lists_hash"] for r in runs if r["catalog"] == cat}
    same = len(set(hashes.values())) == 1
    for build in dict.fromkeys(r["build"] for r in runs):
        rs = [r for r in runs if r["catalog"] == cat and r["build"] == build]
        each = ", ".join(f"{r['engine']['p50']:.1f}" for r in rs)
        lines.append(f"| {os.path.basename(cat)} ({rs[0]['items']} items) | {build} | "
                     f"{med(rs, 'engine', 'p50'):.1f} | {med(rs, 'engine', 'p99'):.1f} | "
                     f"{med(rs, 'engine', 'p999'):.1f} | {med(rs, 'observe', 'p50'):.1f} | "
                     f"{med(rs, 'rank', 'p50'):.1f} | {med(rs, 'rank', 'p99'):.1f} | {each} | "
                     f"{'same' if same else 'DIFFER'} ({rs[0]['lists_hash']}) |")
lines.append("")
lines.append("p99.9 on a shared machine is mostly the scheduler (a run preempted mid-event); "
             "p50 and p99 are the engine's.")
if shared:
    lines.append("")
    lines.append(f"The engine shared by threads (`--readers N`, {os.path.basename(shared[0]['catalog'])}): "
                 "each reader thread owns a shard of the users and sends --events events (model half "
                 "submitted to the writer, user's half and one rank on the published copy); the writer "
                 "applies every op to both copies. Medians of the runs; µs.")
    lines.append("")
    lines.append("| readers | event p50 per thread | event p99 per thread | rank p50 per thread | rank p99 per thread | writer event op (both copies) | full refresh ms (both) | writer µs per op, all | writer wait per batch | events/s, all |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for n in sorted({r["readers"] for r in shared}):
        rs = [r for r in shared if r["readers"] == n]
        def per_thread(part, q):
            return " / ".join(f"{statistics.median(r['threads'][i][part][q] for r in rs):.1f}" for i in range(n))
        def w(key):
            return statistics.median(r["writer"][key] for r in rs)
        lines.append(f"| {n} | {per_thread('event', 'p50')} | {per_thread('event', 'p99')} | "
                     f"{per_thread('rank', 'p50')} | {per_thread('rank', 'p99')} | {w('event_us'):.2f} | "
                     f"{w('refresh_ms'):.1f} | {w('apply_us_per_op'):.2f} | {w('wait_us_per_batch'):.0f} | "
                     f"{statistics.median(r['events_per_s'] for r in rs):.0f} |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "run-engine: wrote $out" >&2

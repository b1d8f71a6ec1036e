#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs several rankcast-loadgen processes as one load and merges their reports exactly.

Each process has a hard limit of 20,000 open files here, so more than 19,000 connections need
several generators. This driver starts P of them, each on its own range of source addresses
(--source-offset), waits until every one has its connections open (--ready-file), samples the
server processes' RSS then (the only moment all connections are open at once), waits for them
to finish and writes one merged report: counts are summed, and the latency histograms are
merged bucket by bucket from the raw buckets each report carries, so the merged percentiles are
exactly those of one generator that would have seen every sample.

usage:
  bench/lgmulti.py --procs 6 --server-pids 123,124 --out merged.json -- \\
      --port 8080 -n 17000 --sources 4 --scenario idle --duration 30
      (every argument after -- goes to each generator; -n is per process)
  bench/lgmulti.py merge a.json b.json ... > merged.json

Also a module: merge_reports(list_of_reports) and quantile_ms(raw_hist, q).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

LOADGEN = os.environ.get("LOADGEN_BIN", "build/bench/rankcast-loadgen")


def bucket_middle_ns(index, sub_bits=7):
    """Mirror of hist_bucket_middle_ns() in bench/loadgen/stats.c."""
    sub = 1 << sub_bits
    if index < 2 * sub:
        return index
    shift = index // sub - 1
    mantissa = index - shift * sub
    return (mantissa << shift) + ((1 << shift) >> 1)


def quantile_ns(h, fraction):
    """Mirror of lg_hist_quantile_ns() (bench/loadgen/stats.c) on a raw histogram from a report."""
    total = h["total"]
    if total == 0:
        return 0
    rank = max(1, int(fraction * total + 0.999999))
    seen = 0
    for index, count in sorted(h["buckets"]):
        seen += count
        if seen >= rank:
            return min(bucket_middle_ns(index, h["sub_bits"]), h["max_ns"])
    return h["max_ns"]


def summary_ms(h):
    q = lambda f: round(quantile_ns(h, f) / 1e6, 3)  # noqa: E731
    return {
        "count": h["total"], "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999),
        "max": round(h["max_ns"] / 1e6, 3),
        "mean": round(h["sum_ns"] / h["total"] / 1e6, 3) if h["total"] else 0,
    }


def merge_hists(hists):
    buckets = {}
    for h in hists:
        for index, count in h["buckets"]:
            buckets[index] = buckets.get(index, 0) + count
    return {
        "sub_bits": hists[0]["sub_bits"],
        "total": sum(h["total"] for h in hists),
        "max_ns": max(h["max_ns"] for h in hists),
        "sum_ns": sum(h["sum_ns"] for h in hists),
        "buckets": sorted(buckets.items()),
    }


def _sum_numbers(dicts, keys):
    return {k: sum(d.get(k, 0) or 0 for d in dicts) for k in keys}


def merge_reports(reports):
    """One report out of several generators' reports of the same scenario and window."""
    if len(reports) == 1:
        return reports[0]
    r0 = reports[0]
    merged = {
        "tool": "rankcast-loadgen (merged by bench/lgmulti.py)",
        "processes": len(reports),
        "scenario": r0.get("scenario", "latency"),
        "framing": r0.get("framing"),
        "tls": r0.get("tls"),
        "config": dict(r0["config"], connections=sum(r["config"]["connections"] for r in reports)),
    }
    merged["connections"] = _sum_numbers(
        [r["connections"] for r in reports],
        ["requested", "open", "failed", "open_at_end", "lost_during_run"])
    merged["connections"]["first_failure"] = {}
    for r in reports:
        merged["connections"]["first_failure"].update(r["connections"].get("first_failure", {}))
    ev = _sum_numbers([r["events"] for r in reports],
                      ["sent", "sent_including_warmup", "acked", "errored", "unanswered",
                       "pushes_matched", "skipped_not_ready"])
    ev["pushes_matched_ratio"] = ev["pushes_matched"] / ev["sent"] if ev["sent"] else 0
    codes = {}
    for r in reports:
        for code, count in r["events"].get("errors_by_code", {}).items():
            codes[code] = codes.get(code, 0) + count
    ev["errors_by_code"] = codes
    merged["events"] = ev
    seconds = max(r["rate"]["measured_s"] for r in reports)
    merged["rate"] = {
        "target_events_per_s": sum(r["rate"]["target_events_per_s"] for r in reports),
        "achieved_events_per_s": ev["sent"] / seconds if seconds else 0,
        "measured_s": seconds,
    }
    hs = _sum_numbers([r["handshakes"] for r in reports], ["slots", "done", "measured", "failed"])
    hs["until"] = r0["handshakes"]["until"]
    hs["per_s"] = hs["measured"] / seconds if seconds else 0
    merged["handshakes"] = hs
    fo = _sum_numbers([r["fanout"] for r in reports],
                      ["posted", "posted_measured", "accepted", "accepted_measured", "refused",
                       "post_failed", "skipped_busy", "deliveries_total", "deliveries_measured",
                       "deliveries_expected"])
    fo["delivered_ratio"] = (fo["deliveries_measured"] / fo["deliveries_expected"]
                             if fo["deliveries_expected"] else 0)
    fo["deliveries_per_s"] = fo["deliveries_measured"] / seconds if seconds else 0
    merged["fanout"] = fo
    merged["stalled"] = _sum_numbers([r["stalled"] for r in reports],
                                     ["requested", "stalled", "closed_by_server"])
    merged["histograms"] = {}
    for name in r0["histograms"]:
        h = merge_hists([r["histograms"][name] for r in reports])
        merged["histograms"][name] = h
        merged[name] = summary_ms(h)
    merged["server"] = r0.get("server")
    # Each generator saw the whole machine; their CPU figures add up, the machine's do not.
    m0 = r0.get("machine", {})
    lg_cores = sum(r["machine"].get("loadgen_cores_measured", 0) for r in reports)
    merged["machine"] = dict(m0, loadgen_cores_measured=lg_cores,
                             other_cores_measured=max(0.0, m0.get("other_cores_measured", 0)
                                                      - (lg_cores - m0.get("loadgen_cores_measured", 0))))
    merged["loadgen"] = {
        "cpu_user_s": sum(r["loadgen"]["cpu_user_s"] for r in reports),
        "cpu_sys_s": sum(r["loadgen"]["cpu_sys_s"] for r in reports),
        "max_rss_kb": max(r["loadgen"]["max_rss_kb"] for r in reports),
        "elapsed_s": max(r["loadgen"]["elapsed_s"] for r in reports),
    }
    merged["parts"] = [{"pid": r["loadgen"]["pid"], "connections": r["connections"]} for r in reports]
    return merged


def read_rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            return -1
    return total


def run(procs, server_pids, lg_args, sources, timeout_s, out_path):
    work = tempfile.mkdtemp(prefix="lgmulti-")
    rss_before = read_rss_kb(server_pids) if server_pids else -1
    children = []
    for i in range(procs):
        ready = os.path.join(work, f"{i}.ready")
        report = os.path.join(work, f"{i}.json")
        cmd = [LOADGEN, *lg_args, "--source-offset", str(i * sources), "--ready-file", ready,
               "--json-out", report]
        log = open(os.path.join(work, f"{i}.log"), "w")
        children.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log), ready, report, log))
    deadline = time.monotonic() + timeout_s
    rss_open = -1
    all_ready_s = None
    started = time.monotonic()
    while time.monotonic() < deadline:
        if all(os.path.exists(c[1]) or c[0].poll() is not None for c in children):
            all_ready_s = time.monotonic() - started
            time.sleep(0.5)  # let the last welcomes' allocations land
            rss_open = read_rss_kb(server_pids) if server_pids else -1
            break
        time.sleep(0.1)
    for p, _, _, _ in children:
        try:
            p.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.terminate()
            p.wait(timeout=10)
    reports = []
    for i, (p, _, report, log) in enumerate(children):
        log.close()
        if os.path.exists(report):
            with open(report) as f:
                reports.append(json.load(f))
        else:
            sys.stderr.write(open(os.path.join(work, f"{i}.log")).read())
    if not reports:
        sys.exit("lgmulti: no generator produced a report")
    merged = merge_reports(reports)
    opened = merged["connections"]["open"]
    merged["multi"] = {
        "processes": procs, "server_pids": server_pids, "rss_kb_before": rss_before,
        "rss_kb_all_open": rss_open, "seconds_until_all_open": all_ready_s,
        "rss_per_conn_kb_all_open": (rss_open - rss_before) / opened
        if opened and rss_open >= 0 and rss_before >= 0 else -1,
    }
    with open(out_path, "w") as f:
        json.dump(merged, f, indent=1)
    c = merged["connections"]
    print(f"lgmulti: {procs} generators, {c['open']}/{c['requested']} open, {c['failed']} failed, "
          f"{c['lost_during_run']} lost; server RSS {rss_before} -> {rss_open} KB "
          f"({merged['multi']['rss_per_conn_kb_all_open']:.2f} KB/connection)", file=sys.stderr)
    return merged


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "merge":
        reports = [json.load(open(p)) for p in sys.argv[2:]]
        json.dump(merge_reports(reports), sys.stdout, indent=1)
        return
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit("lgmulti: generator arguments go after --")
    split = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--server-pids", default="")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv[:split])
    lg_args = argv[split + 1:]
    sources = 1
    if "--sources" in lg_args:
        sources = int(lg_args[lg_args.index("--sources") + 1])
    pids = [int(p) for p in a.server_pids.split(",") if p]
    run(a.procs, pids, lg_args, sources, a.timeout, a.out)


if __name__ == "__main__":
    main()

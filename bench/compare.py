#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Side-by-side benchmark: rankcast against the Node `ws` and Socket.IO reference peers.

Run through bench/run-compare.sh (which checks the binaries and the peers' npm packages).
Every scenario runs against each server in turn, on a fresh server process, in the same run,
so the ratios compare servers under the same machine conditions. Results go to
bench/results/compare-<stamp>.{json,md} plus SVG plots. Settings come from the environment;
see bench/README.md ("Side by side") for each one and the pass criteria.
"""
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lgmulti  # noqa: E402
import svgplot  # noqa: E402


def env(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.split() if isinstance(default, list) else type(default)(value)


SERVER_BIN = env("SERVER_BIN", "build/server/rankcast")
LOADGEN_BIN = env("LOADGEN_BIN", "build/bench/rankcast-loadgen")
CATALOG = env("CATALOG", "build/bench/catalog-100k.jsonl")
RESULTS_DIR = env("RESULTS_DIR", "bench/results")
BASE_PORT = env("BASE_PORT", 18700)
SERVERS = env("SERVERS", ["rankcast", "ws", "socketio"])
SCENARIOS = env("SCENARIOS", ["idle", "latency", "sustained", "fanout", "handshake", "stalled"])
RUNS = env("RUNS", 1)
TOKEN = "bench-admin-token"
IDLE_CONNS = env("IDLE_CONNS", 10000)
IDLE_HOLD_S = env("IDLE_HOLD_S", 5)
LAT_CONNS = env("LAT_CONNS", 10000)
LAT_RATE = env("LAT_RATE", 2.0)
LAT_WARMUP_S = env("LAT_WARMUP_S", 3)
LAT_DURATION_S = env("LAT_DURATION_S", 10)
SUS_CONNS = env("SUS_CONNS", 1000)
SUS_RATES = env("SUS_RATES", ["2", "5", "10", "20", "40", "80"])
SUS_PROCS = env("SUS_PROCS", 1)
SUS_WARMUP_S = env("SUS_WARMUP_S", 2)
SUS_DURATION_S = env("SUS_DURATION_S", 5)
SUS_ACK_P50_MS = env("SUS_ACK_P50_MS", 50.0)
SUS_ACK_P99_MS = env("SUS_ACK_P99_MS", 1000.0)
FAN_CONNS = env("FAN_CONNS", 5000)
FAN_RATES = env("FAN_RATES", ["2", "5", "10", "20", "50", "100"])
FAN_DURATION_S = env("FAN_DURATION_S", 5)
FAN_P50_MS = env("FAN_P50_MS", 250.0)
FAN_P99_MS = env("FAN_P99_MS", 2000.0)
HS_SLOTS = env("HS_SLOTS", 64)
HS_DURATION_S = env("HS_DURATION_S", 5)
ST_CONNS = env("ST_CONNS", 1000)
ST_RATE = env("ST_RATE", 2.0)
ST_STALLED = env("ST_STALLED", 100)
ST_DURATION_S = env("ST_DURATION_S", 10)
TLS = env("TLS", "auto")

STAMP = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
WORK = tempfile.mkdtemp(prefix="compare-")


def log(msg):
    print(f"compare: {msg}", file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def machine_info():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    versions = {}
    for pkg in ("ws", "socket.io"):
        try:
            with open(f"bench/peers/node_modules/{pkg}/package.json") as f:
                versions[pkg] = json.load(f)["version"]
        except OSError:
            versions[pkg] = "?"
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
        "peer_versions": versions, "loadavg_start": loadavg(),
    }


def rankcast_has_tls():
    out = subprocess.run([SERVER_BIN, "--help"], capture_output=True, text=True)
    return "--tls-cert" in out.stdout + out.stderr


def make_cert():
    cert, key = os.path.join(WORK, "cert.pem"), os.path.join(WORK, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    return cert, key


CERT = KEY = None


def tls_servers():
    if TLS == "0":
        return []
    names = [s for s in SERVERS if s != "rankcast" or rankcast_has_tls()]
    return names


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class Server:
    """One fresh server process; `with Server(name) as s:` starts it and stops it."""

    def __init__(self, name, tls=False, index=0):
        self.name, self.tls = name, tls
        self.port = BASE_PORT + 10 * SERVERS.index(name) + index
        self.proc = None

    def command(self):
        tls_args = ["--tls-cert", CERT, "--tls-key", KEY] if self.tls else []
        if self.name == "rankcast":
            return [SERVER_BIN, "--port", str(self.port), "--listen", "127.0.0.1", "--anonymous", "--anonymous-ids", "chosen",
                    "--max-conns-per-ip", "0", "--catalog",
                    CATALOG, "--admin-token", TOKEN, "--log-level", "warn", *tls_args]
        script = {"ws": "bench/peers/ws-peer.mjs", "socketio": "bench/peers/socketio-peer.mjs"}
        return ["node", script[self.name], "--port", str(self.port), "--catalog", CATALOG,
                "--admin-token", TOKEN, *tls_args]

    def __enter__(self):
        if not port_free(self.port):
            raise SystemExit(f"compare: port {self.port} is taken (set BASE_PORT)")
        self.log_path = os.path.join(WORK, f"{self.name}-{self.port}-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"compare: {self.name} exited at start: {open(self.log_path).read()[-500:]}")
            if not port_free(self.port):
                time.sleep(0.5)  # start-up allocations settle before the RSS baseline
                return self
            time.sleep(0.1)
        raise SystemExit(f"compare: {self.name} did not listen within 60 s")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def loadgen_args(self):
        args = ["--port", str(self.port)]
        if self.name == "socketio":
            args += ["--framing", "socketio"]
        if self.tls:
            args += ["--tls"]
        return args


def loadgen(server, args, procs=1, timeout_s=300):
    """Runs the generator(s) against `server`; returns the (merged) report."""
    out = os.path.join(WORK, f"lg-{time.monotonic_ns()}.json")
    lgmulti.LOADGEN = LOADGEN_BIN
    sources = int(args[args.index("--sources") + 1]) if "--sources" in args else 1
    load_before = loadavg()
    report = lgmulti.run(procs, [server.proc.pid], server.loadgen_args() + args + ["--server-pid",
                         str(server.proc.pid)], sources, timeout_s, out)
    report["loadavg_before"] = load_before
    report["loadavg_after"] = loadavg()
    return report


def pct(h, q):
    """A percentile, or None when nothing was measured (an overloaded server matched no push)."""
    return h[q] if h.get("count") else None


def cpu_us_per(r, per_s):
    """Server CPU microseconds per operation: robust to a shared machine, unlike throughput."""
    cores = (r.get("server") or {}).get("cpu_cores_measured", -1)
    return cores * 1e6 / per_s if cores is not None and cores > 0 and per_s > 0 else None


def acked_per_s(r):
    """Events the server answered per second of the window: what it processed, not what it got."""
    secs = r["rate"]["measured_s"]
    return r["events"]["acked"] / secs if secs else 0


def conditions(r):
    m = r.get("machine", {})
    return {"loadavg": r.get("loadavg_before"), "other_cores": m.get("other_cores_measured"),
            "server_cores": (r.get("server") or {}).get("cpu_cores_measured"),
            "loadgen_cores": m.get("loadgen_cores_measured")}


def compact(r):
    """What the summary keeps of a report (the raw buckets stay in the JSON)."""
    keep = ["scenario", "framing", "tls", "config", "connections", "events", "rate", "latency_ms",
            "ack_latency_ms", "handshakes", "handshake_ms", "fanout", "delivery_latency_ms",
            "stalled", "server", "machine", "loadgen", "multi", "loadavg_before", "loadavg_after",
            "histograms"]
    return {k: r[k] for k in keep if k in r}


# ---------------------------------------------------------------------------------------------
# Scenarios: each returns {"metrics": {name: value}, "detail": ...} for one server


def scenario_idle(name, tls=False):
    with Server(name, tls) as s:
        procs = max(1, math.ceil(IDLE_CONNS / 19000))
        per = math.ceil(IDLE_CONNS / procs)
        r = loadgen(s, ["-n", str(per), "--sources", "4", "--scenario", "idle", "--connect-rate",
                        "3000", "--warmup", "0", "--duration", str(IDLE_HOLD_S)], procs)
    c = r["connections"]
    rss = r["multi"]["rss_per_conn_kb_all_open"]
    srv = r.get("server") or {}
    end = srv.get("rss_per_conn_kb_end", -1) if procs == 1 else -1
    return {"metrics": {"rss_kb_per_conn": rss, "rss_kb_per_conn_end": end,
                        "failed": c["failed"] + c["lost_during_run"], "open": c["open"]},
            "conditions": conditions(r), "reports": [compact(r)]}


def scenario_latency(name):
    with Server(name) as s:
        r = loadgen(s, ["-n", str(LAT_CONNS), "--sources", "4", "--connect-rate", "5000",
                        "--rate", str(LAT_RATE), "--warmup", str(LAT_WARMUP_S), "--duration",
                        str(LAT_DURATION_S), "--catalog", CATALOG])
    lat = r["latency_ms"]
    return {"metrics": {"p50_ms": pct(lat, "p50"), "p99_ms": pct(lat, "p99"), "p999_ms": pct(lat, "p999"),
                        "achieved_events_per_s": r["rate"]["achieved_events_per_s"],
                        "pushed_ratio": r["events"]["pushes_matched_ratio"],
                        "unanswered": r["events"]["unanswered"],
                        "server_cores": (r.get("server") or {}).get("cpu_cores_measured", -1),
                        "cpu_us_per_event": cpu_us_per(r, acked_per_s(r))},
            "conditions": conditions(r), "reports": [compact(r)]}


def sustained_step_passes(r, target):
    e = r["events"]
    reasons = []
    if r["rate"]["achieved_events_per_s"] < 0.95 * target:
        reasons.append("sent < 95% of target")
    if e["sent"] and e["unanswered"] > 0.001 * e["sent"]:
        reasons.append("> 0.1% unanswered")
    if e["errored"]:
        reasons.append("errors")
    if r["ack_latency_ms"]["p50"] > SUS_ACK_P50_MS:
        reasons.append(f"ack p50 > {SUS_ACK_P50_MS:g} ms")
    if r["ack_latency_ms"]["p99"] > SUS_ACK_P99_MS:
        reasons.append(f"ack p99 > {SUS_ACK_P99_MS:g} ms")
    if r["connections"]["failed"] or r["connections"]["lost_during_run"]:
        reasons.append("connections failed or lost")
    return reasons


def scenario_sustained(name):
    steps, best = [], 0.0
    with Server(name) as s:
        for rate in SUS_RATES:
            target = float(rate) * SUS_CONNS
            per = math.ceil(SUS_CONNS / SUS_PROCS)
            r = loadgen(s, ["-n", str(per), "--sources", "4", "--connect-rate", "5000", "--rate",
                            rate, "--warmup", str(SUS_WARMUP_S), "--duration", str(SUS_DURATION_S),
                            "--catalog", CATALOG, "--drain-ms", "3000"], SUS_PROCS)
            reasons = sustained_step_passes(r, target)
            step = {"target": target, "achieved": r["rate"]["achieved_events_per_s"],
                    "ack_p50_ms": r["ack_latency_ms"]["p50"], "ack_p99_ms": r["ack_latency_ms"]["p99"], "p99_ms": r["latency_ms"]["p99"],
                    "pushed_ratio": r["events"]["pushes_matched_ratio"],
                    "unanswered": r["events"]["unanswered"], "pass": not reasons,
                    "cpu_us_per_event": cpu_us_per(r, acked_per_s(r)),
                    "why": reasons, "conditions": conditions(r)}
            steps.append(step)
            log(f"  sustained {name} {target:.0f}/s: achieved {step['achieved']:.0f}, ack p99 "
                f"{step['ack_p99_ms']} ms, server {step['conditions']['server_cores']} cores: "
                f"{'pass' if not reasons else 'FAIL ' + ', '.join(reasons)}")
            if reasons:
                break
            best = step["achieved"]
    # CPU per event at the highest passing step (the first step when none passed).
    ref = ([st for st in steps if st["pass"]] or steps[:1])[-1:] if steps else []
    cpu = ref[0]["cpu_us_per_event"] if ref else None
    return {"metrics": {"max_sustained_events_per_s": best, "cpu_us_per_event": cpu}, "steps": steps,
            "conditions": steps[-1]["conditions"] if steps else {}}


def scenario_fanout(name):
    steps, best = [], 0.0
    with Server(name) as s:
        for rate in FAN_RATES:
            r = loadgen(s, ["-n", str(FAN_CONNS), "--sources", "4", "--connect-rate", "5000",
                            "--scenario", "fanout", "--push-rate", rate, "--admin-token", TOKEN,
                            "--warmup", "1", "--duration", str(FAN_DURATION_S)])
            f = r["fanout"]
            reasons = []
            if f["delivered_ratio"] < 0.99:
                reasons.append("delivered < 99%")
            if f["refused"] or f["post_failed"] or f["skipped_busy"]:
                reasons.append("posts refused/failed/skipped")
            if r["delivery_latency_ms"]["p50"] > FAN_P50_MS:
                reasons.append(f"delivery p50 > {FAN_P50_MS:g} ms")
            if r["delivery_latency_ms"]["p99"] > FAN_P99_MS:
                reasons.append(f"delivery p99 > {FAN_P99_MS:g} ms")
            step = {"push_rate": float(rate), "target": float(rate) * r["connections"]["open"],
                    "achieved": f["deliveries_per_s"], "delivered_ratio": f["delivered_ratio"],
                    "p50_ms": r["delivery_latency_ms"]["p50"], "p99_ms": r["delivery_latency_ms"]["p99"],
                    "pass": not reasons, "why": reasons, "conditions": conditions(r),
                    "cpu_us_per_delivery": cpu_us_per(r, f["deliveries_per_s"])}
            steps.append(step)
            log(f"  fanout {name} {step['target']:.0f}/s: achieved {step['achieved']:.0f}, p99 "
                f"{step['p99_ms']} ms: {'pass' if not reasons else 'FAIL ' + ', '.join(reasons)}")
            if reasons:
                break
            best = step["achieved"]
    ref = ([st for st in steps if st["pass"]] or steps[:1])[-1:] if steps else []
    cpu = ref[0]["cpu_us_per_delivery"] if ref else None
    return {"metrics": {"max_deliveries_per_s": best, "cpu_us_per_delivery": cpu}, "steps": steps,
            "conditions": steps[-1]["conditions"] if steps else {}}


def scenario_handshake(name, tls=False, until="upgrade"):
    with Server(name, tls) as s:
        r = loadgen(s, ["-n", str(HS_SLOTS), "--sources", "64", "--scenario", "handshake",
                        "--handshake-until", until, "--connect-rate", "100000", "--warmup", "1",
                        "--duration", str(HS_DURATION_S)])
    return {"metrics": {"handshakes_per_s": r["handshakes"]["per_s"],
                        "failed": r["handshakes"]["failed"], "p99_ms": r["handshake_ms"]["p99"],
                        "cpu_us_per_handshake": cpu_us_per(r, r["handshakes"]["per_s"])},
            "conditions": conditions(r), "reports": [compact(r)]}


def scenario_stalled(name, stalled):
    with Server(name) as s:
        args = ["-n", str(ST_CONNS), "--sources", "4", "--rate", str(ST_RATE), "--warmup", "2",
                "--duration", str(ST_DURATION_S), "--catalog", CATALOG]
        if stalled:
            args += ["--stalled", str(stalled)]
        r = loadgen(s, args)
    return {"metrics": {"p50_ms": pct(r["latency_ms"], "p50"), "p99_ms": pct(r["latency_ms"], "p99"),
                        "p999_ms": pct(r["latency_ms"], "p999"),
                        "pushed_ratio": r["events"]["pushes_matched_ratio"],
                        "stalled_closed": r["stalled"]["closed_by_server"],
                        "server_rss_end_kb": (r.get("server") or {}).get("rss_kb_end", -1)},
            "conditions": conditions(r), "reports": [compact(r)]}


# Every measurement: (key, label, function, better) with better "high" or "low".
def plan():
    p = []
    if "idle" in SCENARIOS:
        p.append(("idle", f"idle: {IDLE_CONNS} conns, server RSS KB/conn", lambda n: scenario_idle(n), "rss_kb_per_conn", "low"))
    if "latency" in SCENARIOS:
        p.append(("latency", f"event->push at {LAT_CONNS}x{LAT_RATE:g}/s: p99 ms", scenario_latency, "p99_ms", "low"))
    if "sustained" in SCENARIOS:
        p.append(("sustained", f"max sustained events/s ({SUS_CONNS} conns)", scenario_sustained, "max_sustained_events_per_s", "high"))
    if "fanout" in SCENARIOS:
        p.append(("fanout", f"push fan-out deliveries/s ({FAN_CONNS} conns)", scenario_fanout, "max_deliveries_per_s", "high"))
    if "handshake" in SCENARIOS:
        p.append(("handshake_ws", "handshakes/s ws (to 101)", lambda n: scenario_handshake(n), "handshakes_per_s", "high"))
        p.append(("handshake_ws_welcome", "handshakes/s ws (to welcome)", lambda n: scenario_handshake(n, until="welcome"), "handshakes_per_s", "high"))
    if "stalled" in SCENARIOS:
        p.append(("stalled_without", f"p99 ms, {ST_CONNS}x{ST_RATE:g}/s, no stalled clients", lambda n: scenario_stalled(n, 0), "p99_ms", "low"))
        p.append(("stalled_with", f"p99 ms, same + {ST_STALLED} stalled clients", lambda n: scenario_stalled(n, ST_STALLED), "p99_ms", "low"))
    return p


def plan_tls():
    p = []
    if "idle" in SCENARIOS:
        p.append(("idle_tls", f"idle wss: {IDLE_CONNS} conns, server RSS KB/conn", lambda n: scenario_idle(n, True), "rss_kb_per_conn", "low"))
    if "handshake" in SCENARIOS:
        p.append(("handshake_wss", "handshakes/s wss (to 101)", lambda n: scenario_handshake(n, True), "handshakes_per_s", "high"))
    return p


# Secondary rows of the table: server CPU per operation, which a busy machine disturbs far
# less than throughput (a starved server does less work per second, not more per event).
EXTRA_ROWS = {
    "latency": ["cpu_us_per_event"],
    "sustained": ["cpu_us_per_event"],
    "fanout": ["cpu_us_per_delivery"],
    "handshake_ws": ["cpu_us_per_handshake"],
    "handshake_wss": ["cpu_us_per_handshake"],
}

TARGETS = {  # the targets for rankcast, as (metric, comparison, value)
    "idle": ("rss_kb_per_conn", "<=", 2.0),
    "idle_tls": ("rss_kb_per_conn", "<=", 8.0),
    "latency": ("p99_ms", "<=", 1.0),
    "sustained": ("max_sustained_events_per_s", ">=", 50000),
    "fanout": ("max_deliveries_per_s", ">=", 500000),
    "handshake_ws": ("handshakes_per_s", ">=", 5000),
    "handshake_wss": ("handshakes_per_s", ">=", 1000),
}


def median_result(results):
    """The run whose primary metric is the median (keeps every figure of one real run)."""
    return results[0] if len(results) == 1 else sorted(results, key=lambda r: r["_primary"])[len(results) // 2]


def main():
    global CERT, KEY
    os.makedirs(RESULTS_DIR, exist_ok=True)
    info = machine_info()
    log(f"stamp {STAMP}, servers {SERVERS}, scenarios {SCENARIOS}, runs {RUNS}, load {info['loadavg_start']}")
    measurements = [(k, label, fn, metric, better, SERVERS) for k, label, fn, metric, better in plan()]
    tls_names = tls_servers()
    if tls_names:
        CERT, KEY = make_cert()
        measurements += [(k, label, fn, metric, better, tls_names) for k, label, fn, metric, better in plan_tls()]
    info["tls_servers"] = tls_names
    results = {}
    started = time.monotonic()
    for key, label, fn, metric, better, names in measurements:
        results[key] = {"label": label, "metric": metric, "better": better, "servers": {}}
        runs = {n: [] for n in names}
        for run in range(RUNS):
            for n in names:  # interleaved: each server sees the same stretch of machine noise
                log(f"{key} run {run + 1}/{RUNS}: {n}")
                try:
                    res = fn(n)
                except SystemExit as e:
                    res = {"metrics": {}, "error": str(e)}
                    log(f"  {n}: {e}")
                res["_primary"] = res["metrics"].get(metric)
                if res["_primary"] is None:
                    res["_primary"] = float("nan")
                runs[n].append(res)
                log(f"  {n}: {metric} = {res['_primary']}")
        for n in names:
            med = median_result(runs[n])
            med["runs_primary"] = [r["_primary"] for r in runs[n]]
            results[key]["servers"][n] = med
    info["loadavg_end"] = loadavg()
    info["elapsed_s"] = round(time.monotonic() - started, 1)
    out = {"stamp": STAMP, "machine": info, "settings": settings(), "results": results}
    json_path = os.path.join(RESULTS_DIR, f"compare-{STAMP}.json")
    with open(json_path, "w") as f:
        json.dump(out, f, indent=1)
    md_path = os.path.join(RESULTS_DIR, f"compare-{STAMP}.md")
    plots = svgplot.write_plots(out, RESULTS_DIR, f"compare-{STAMP}")
    with open(md_path, "w") as f:
        f.write(render_markdown(out, plots))
    log(f"wrote {md_path} and {json_path} in {info['elapsed_s']} s")
    print(open(md_path).read())


def settings():
    names = ["CATALOG", "RUNS", "IDLE_CONNS", "IDLE_HOLD_S", "LAT_CONNS", "LAT_RATE", "LAT_WARMUP_S",
             "LAT_DURATION_S", "SUS_CONNS", "SUS_RATES", "SUS_PROCS", "SUS_WARMUP_S",
             "SUS_DURATION_S", "SUS_ACK_P50_MS", "SUS_ACK_P99_MS", "FAN_CONNS", "FAN_RATES", "FAN_DURATION_S",
             "FAN_P50_MS", "FAN_P99_MS", "HS_SLOTS", "HS_DURATION_S", "ST_CONNS", "ST_RATE", "ST_STALLED",
             "ST_DURATION_S"]
    return {n: globals()[n] for n in names}


def fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def ratio(rc, peer, better):
    """How many times better rankcast is (> 1: rankcast ahead)."""
    if rc is None or peer is None or any(isinstance(x, float) and math.isnan(x) for x in (rc, peer)):
        return None
    if better == "high":
        return rc / peer if peer > 0 else None
    return peer / rc if rc > 0 else None


def render_markdown(out, plots):
    m, res = out["machine"], out["results"]
    lines = [f"# rankcast vs Node ws vs Socket.IO, side by side ({out['stamp']})", "",
             f"Machine: {m['cpus']} CPUs, {m['cpu_model']}, Linux {m['kernel']}; {m['date']}; "
             f"commit {m['commit']}; Node {m['node']}, ws {m['peer_versions']['ws']}, "
             f"socket.io {m['peer_versions']['socket.io']}. Load average {m['loadavg_start']} at the "
             f"start, {m['loadavg_end']} at the end; {m['elapsed_s']} s in all. The load generator "
             "runs on the same cores. Each figure: the median run of "
             f"{out['settings']['RUNS']} (servers interleaved, a fresh server each time).", "",
             "Ratio columns: how many times better rankcast is than the peer (> 1: rankcast "
             "ahead; for latency, memory and CPU per operation, peer ÷ rankcast). On a shared "
             "machine the throughput figures mostly measure how much CPU the server got; the "
             "rows \"server CPU µs per …\" (the server's CPU time in the measured window ÷ the "
             "operations it completed) are the steadier comparison.", "",
             "| measurement | rankcast | ws | Socket.IO | × vs ws | × vs Socket.IO | target (rankcast) | met | load avg / other cores |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for key, r in res.items():
        rows.append((key, r["label"], r["metric"], r["better"], r))
        for metric in EXTRA_ROWS.get(key, []):
            rows.append((None, f"{r['label'].split(':')[0].split('(')[0].strip()}: server CPU µs per "
                         f"{metric.split('_per_')[1]}", metric, "low", r))
    for key, label, metric, better, r in rows:
        vals = {n: r["servers"].get(n, {}).get("metrics", {}).get(metric) for n in ("rankcast", "ws", "socketio")}
        rc = vals["rankcast"]
        t = TARGETS.get(key)
        target_txt, met = "", ""
        if t:
            target_txt = f"{t[1]} {fmt(t[2])}"
            if rc is not None:
                met = "yes" if (rc <= t[2] if t[1] == "<=" else rc >= t[2]) else "**no**"
        cond = r["servers"].get("rankcast", {}).get("conditions", {})
        cond_txt = f"{fmt(cond.get('loadavg'))} / {fmt(cond.get('other_cores'))}" if cond else ""
        lines.append(f"| {label} | {fmt(rc)} | {fmt(vals['ws'])} | {fmt(vals['socketio'])} | "
                     f"{fmt(ratio(rc, vals['ws'], better))} | {fmt(ratio(rc, vals['socketio'], better))} | "
                     f"{target_txt} | {met} | {cond_txt} |")
    lines += ["", "## Details", ""]
    for key, r in res.items():
        lines.append(f"**{r['label']}** (`{key}`)")
        lines.append("")
        for n, s in r["servers"].items():
            if "error" in s:
                lines.append(f"- {n}: error: {s['error']}")
                continue
            mets = ", ".join(f"{k} {fmt(v)}" for k, v in s["metrics"].items())
            c = s.get("conditions", {})
            lines.append(f"- {n}: {mets}; server {fmt(c.get('server_cores'))} cores, generator "
                         f"{fmt(c.get('loadgen_cores'))}, other {fmt(c.get('other_cores'))}, load "
                         f"{fmt(c.get('loadavg'))}; runs {s.get('runs_primary')}")
            for st in s.get("steps", []):
                lines.append(f"  - step target {fmt(st['target'])}/s: achieved {fmt(st['achieved'])}, "
                             + (f"ack p50/p99 {fmt(st.get('ack_p50_ms'))}/{fmt(st['ack_p99_ms'])} ms, " if "ack_p99_ms" in st else "")
                             + f"p99 {fmt(st['p99_ms'])} ms, server {fmt(st['conditions'].get('server_cores'))} cores, "
                             f"generator {fmt(st['conditions'].get('loadgen_cores'))}: "
                             + ("pass" if st["pass"] else "fail (" + ", ".join(st["why"]) + ")"))
        lines.append("")
    lines += ["## Criteria", "",
              f"- sustained: the highest step where the generator sent ≥ 95 % of the target rate, "
              f"≤ 0.1 % of events had no ack by the end of the 3 s drain, no errors, no lost "
              f"connections, the ack p50 stayed ≤ {SUS_ACK_P50_MS:g} ms and the ack p99 ≤ "
              f"{SUS_ACK_P99_MS:g} ms (a server that falls behind queues events, and the ack "
              "latency of most events grows with the backlog; the p99 bound is loose because the "
              "machine is shared).",
              f"- fan-out: the highest push rate at which ≥ 99 % of the expected deliveries "
              f"(accepted pushes × open connections) arrived, the delivery p50 stayed ≤ "
              f"{FAN_P50_MS:g} ms and the p99 ≤ {FAN_P99_MS:g} ms (each push is a burst to every "
              "connection: its last delivery waits for all the others), and no POST was refused; "
              "deliveries/s counted client-side over the measured window.",
              "- handshakes: closed loop of HS_SLOTS concurrent connections, each connecting, "
              "upgrading (to the 101, or to `welcome` after `hello`), closing and starting again.",
              "- idle: RSS of the server process(es) when every connection is open (after hello "
              "and one subscription) minus before, per connection.", ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    lines += [f"Raw reports with histogram buckets: `compare-{out['stamp']}.json` (not kept in git; "
              "each run of `bench/run-compare.sh` writes its own).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

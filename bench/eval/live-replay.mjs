#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// live-replay: next-item evaluation of the lists a running rankcast server pushes over
// WebSocket, on the same inputs, split and scoring rules as rankcast-eval (bench/eval/eval.c,
// data.c). Usage and the side-by-side runs: bench/eval/README.md ("Live replay").
//
// The client is `ws` (from tests/node_modules, as the integration tests use it), speaking the
// JSON subprotocol written from proto/PROTOCOL.md, not the JS SDK's RankcastClient: the SDK
// delivers lists as state (it keeps the newest version, queues and retries events), while a
// measurement needs each raw frame, its arrival time and the `cause` that ties a list to the
// event. The SDK's token bucket (client-sdk/js/src/rate.js, dependency-free) is reused, so
// the client paces events exactly as the SDK does under the server's rate limit.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { availableParallelism, cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { TokenBucket } from '../../client-sdk/js/src/rate.js';
import { K, KINDS, Metrics, distribution, loadDataset, planAndScorePop } from './replay-data.mjs';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const WebSocket = loadWs();

function loadWs() {
  try {
    return createRequire(join(REPO_ROOT, 'tests/package.json'))('ws');
  } catch {
    process.stderr.write('live-replay: the `ws` package is missing: run scripts/setup (npm ci in tests/)\n');
    process.exit(1);
  }
}

const SURFACE = 'replay';
const ID_RE = /^[A-Za-z0-9._:@-]{1,64}$/;

const USAGE = `usage: node bench/eval/live-replay.mjs INPUT TARGET [options]
input (one of), as rankcast-eval:
  --prepared PATH           split<TAB>ts_ms<TAB>items (bench/eval/prepare.py)
  --train PATH --test PATH  session-rec TSV (header SessionId, ItemId, Time in s)
  --events PATH             rankcast JSON lines {user,kind,item,ts_ms,value?,session?}
target (one of):
  --url ws://HOST:PORT/ws   a running server (fresh: what it learned before counts too)
  --spawn                   start build/server/rankcast (or --bin, or $RANKCAST_BIN) on a
                            free port with --catalog, and stop it at the end
options:
  --catalog PATH            catalog JSON lines: closes the catalog, as rankcast-eval does
                            (events on unknown items are dropped); with --spawn, the server's
  --catalog-prior           keep the catalog's popularity (default: --spawn gives the server
                            a copy with popularity zeroed, as rankcast-eval zeroes it)
  --label TEXT              data set name for the report (dataset)
  --event KIND              kind of each item in TSV and prepared inputs (view)
  --test-fraction F         events input: last F of the time span is test (0.1)
  --session-gap-s S         events input without "session": new session after S s (1800)
  --targets all|new         all: session-rec's protocol, every next event a target,
                            repeats kept (as rankcast-eval --targets all); new (default)
  --repeat POLICY           the list's subscribe repeat: never (default), not_current,
                            allowed (PROTOCOL.md), as rankcast-eval --repeat
  --test-sample F           predict in this fraction of test sessions, chosen as
                            rankcast-eval --test-sample chooses them (1.0)
  --time-shift-days N       add N days to every event's ts_ms (0): a data set older than
                            the server's --event-time-past-s (at most 10 years) is then
                            learned at its own times, moved as a whole, so the models
                            decay as offline (whole weeks keep the weekday too)
  --concurrency N           test sessions in flight, one connection each (32)
  --train-concurrency N     learn-only sessions in flight (8)
  --timeout-ms MS           longest wait for the list an event causes (5000)
  --results-dir DIR         live-<label>-<stamp>.{md,json} (bench/eval/results; '-': none)
  --bin PATH                server binary for --spawn
  --server-arg=ARG          extra argument for the spawned server, one per use:
                            --server-arg=--events-per-sec --server-arg=50
  --quiet                   no progress lines on stderr
`;

// ---------------------------------------------------------------------------------------------
// Options

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      prepared: { type: 'string' },
      train: { type: 'string' },
      test: { type: 'string' },
      events: { type: 'string' },
      url: { type: 'string' },
      spawn: { type: 'boolean', default: false },
      catalog: { type: 'string' },
      'catalog-prior': { type: 'boolean', default: false },
      label: { type: 'string', default: 'dataset' },
      event: { type: 'string', default: 'view' },
      'test-fraction': { type: 'string', default: '0.1' },
      'session-gap-s': { type: 'string', default: '1800' },
      'test-sample': { type: 'string', default: '1' },
      'time-shift-days': { type: 'string', default: '0' },
      targets: { type: 'string', default: 'new' },
      repeat: { type: 'string', default: 'never' },
      concurrency: { type: 'string', default: '32' },
      'train-concurrency': { type: 'string', default: '8' },
      'timeout-ms': { type: 'string', default: '5000' },
      'results-dir': { type: 'string', default: join(REPO_ROOT, 'bench/eval/results') },
      bin: { type: 'string' },
      'server-arg': { type: 'string', multiple: true, default: [] },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  const o = {
    prepared: values.prepared,
    train: values.train,
    test: values.test,
    events: values.events,
    url: values.url,
    spawn: values.spawn,
    catalog: values.catalog,
    catalogPrior: values['catalog-prior'],
    label: values.label,
    kind: values.event,
    testFraction: Number(values['test-fraction']),
    sessionGapMs: Math.trunc(Number(values['session-gap-s']) * 1000),
    testSample: Number(values['test-sample']),
    timeShiftMs: Math.trunc(Number(values['time-shift-days'])) * 86400000,
    targets: values.targets,
    repeat: values.repeat,
    concurrency: Number.parseInt(values.concurrency, 10),
    trainConcurrency: Number.parseInt(values['train-concurrency'], 10),
    timeoutMs: Number(values['timeout-ms']),
    resultsDir: values['results-dir'],
    bin: values.bin ?? (process.env.RANKCAST_BIN ? resolve(process.env.RANKCAST_BIN) : join(REPO_ROOT, 'build/server/rankcast')),
    serverArgs: values['server-arg'],
    quiet: values.quiet,
  };
  const inputs = [o.prepared, o.events, o.train && o.test].filter(Boolean).length;
  const bad =
    values.help ||
    inputs !== 1 ||
    (o.train && !o.test) ||
    Boolean(o.url) === o.spawn ||
    !KINDS.includes(o.kind) ||
    !(o.concurrency >= 1) ||
    !(o.trainConcurrency >= 1) ||
    !(o.timeoutMs > 0) ||
    !(o.testSample > 0) ||
    !Number.isFinite(o.timeShiftMs) ||
    !['all', 'new'].includes(o.targets) ||
    !['never', 'not_current', 'allowed'].includes(o.repeat);
  if (bad) {
    process.stderr.write(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Server process (--spawn)

async function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A copy of the catalog without `popularity`: the demo catalog's prior counts invoices of the
 * whole data set, test days included, so a server given it would see the future
 * (rankcast-eval zeroes it for the same reason).
 */
function catalogWithoutPrior(path, dir) {
  const out = join(dir, 'catalog.jsonl');
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const j = JSON.parse(l);
      delete j.popularity;
      return JSON.stringify(j);
    });
  writeFileSync(out, lines.join('\n') + '\n');
  return out;
}

async function spawnServer(o, log) {
  if (!existsSync(o.bin)) throw new Error(`rankcast binary not found at ${o.bin}: build it first (or pass --bin)`);
  const tmp = mkdtempSync(join(tmpdir(), 'rankcast-live-replay-'));
  const port = await freePort();
  const args = ['--port', String(port), '--listen', '127.0.0.1', '--node-id', 'replay', '--anonymous', '--anonymous-ids', 'chosen', '--max-conns-per-ip', '0', '--log-level', 'warn'];
  if (o.catalog) args.push('--catalog', o.catalogPrior ? resolve(o.catalog) : catalogWithoutPrior(o.catalog, tmp), '--catalog-open', 'false');
  args.push(...o.serverArgs);
  // The server reads RANKCAST_* from its environment too: none of ours may configure it.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RANKCAST_')));
  const proc = spawn(o.bin, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk) => {
    tail = (tail + chunk.toString()).slice(-16384);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exit = null;
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res((exit = { code, signal }))));
  const server = {
    url: `ws://127.0.0.1:${port}/ws`,
    httpUrl: `http://127.0.0.1:${port}`,
    command: [o.bin, ...args],
    output: () => tail,
    async stop() {
      if (exit === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const r = await exited;
      clearTimeout(timer);
      rmSync(tmp, { recursive: true, force: true });
      return r;
    },
  };
  const deadline = Date.now() + 30000;
  for (;;) {
    if (exit !== null) {
      rmSync(tmp, { recursive: true, force: true });
      throw new Error(`rankcast exited during start (${JSON.stringify(exit)}): ${server.command.join(' ')}\n${tail}`);
    }
    try {
      const res = await fetch(`${server.httpUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`rankcast not ready within 30 s\n${tail}`);
    }
    await sleep(50);
  }
  log(`server: ${server.command.join(' ')}`);
  return server;
}

/** Totals of a few counters on the server's /metrics (null when it does not answer). */
async function serverCounters(httpUrl) {
  const names = [
    'rankcast_events_received_total',
    'rankcast_events_duplicate_total',
    'rankcast_pushes_sent_total',
    'rankcast_pushes_coalesced_total',
    'rankcast_reranks_total',
    'rankcast_errors_total',
    'rankcast_connections_accepted_total',
  ];
  try {
    const text = await (await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
    const totals = Object.fromEntries(names.map((n) => [n, 0]));
    for (const line of text.split('\n')) {
      const m = /^([a-z_]+)(\{[^}]*\})?\s+(\S+)$/.exec(line);
      if (m && m[1] in totals) totals[m[1]] += Number(m[3]);
    }
    return totals;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// WebSocket sessions

/** Counters of the whole run; every error code and close is counted, never dropped. */
class Stats {
  constructor() {
    this.connections = 0;
    this.connectFailures = 0;
    this.eventsSent = { learn: 0, test: 0 };
    this.eventsAcked = { learn: 0, test: 0 };
    this.errors = {}; // code -> count, every error message received
    this.rateLimited = 0; // 4020 on events (also in errors)
    this.retries = 0;
    this.eventsFailed = 0; // refused with a code other than 4020, or never acknowledged
    this.closes = {}; // unexpected close code -> count
    this.abortedSessions = 0;
    this.pushed = 0; // scored events whose list arrived
    this.unchanged = 0; // scored events the server acknowledged without a new list
    this.unchangedAll = 0; // every test event so classified
    this.timeouts = 0; // scored events with no outcome within --timeout-ms
    this.timeoutsAll = 0;
    this.errored = 0; // scored events refused by the server
    this.lost = 0; // scored events of a session whose connection closed
    this.latePushes = 0; // lists caused by an event already classified unchanged or timed out
    this.listsShowingRemembered = 0; // pushed lists with an item the session's state remembers
    this.listsShowingOlder = 0; // pushed lists with an item the session acted on before that
    this.versionRegressions = 0; // recs older than one already received on the connection
    this.repeatHits = 0; // targets repeating an item of the session that the list still showed
    this.latencyMs = [];
    this.tookUs = [];
  }

  error(msg) {
    this.errors[msg.code] = (this.errors[msg.code] ?? 0) + 1;
  }
}

class Conn {
  constructor(ws, stats) {
    this.ws = ws;
    this.stats = stats;
    this.waiter = null;
    this.closeInfo = null;
    this.handler = null;
    this.closedByUs = false;
    ws.on('message', (data) => {
      const at = performance.now();
      let msg;
      try {
        msg = JSON.parse(data.toString('utf8'));
      } catch {
        msg = { type: '__bad_frame' };
      }
      if (msg.type === 'error') stats.error(msg);
      this.handler?.(msg, at);
      this.check();
    });
    ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString() };
      if (!this.closedByUs) stats.closes[code] = (stats.closes[code] ?? 0) + 1;
      this.check();
    });
    ws.on('error', () => {
      // A close follows; `closeInfo` reports it.
    });
  }

  static open(url, stats, timeoutMs) {
    const ws = new WebSocket(url, ['rankcast.v1.json'], { perMessageDeflate: false, handshakeTimeout: timeoutMs });
    const conn = new Conn(ws, stats);
    return new Promise((res, rej) => {
      ws.once('open', () => res(conn));
      ws.once('unexpected-response', (_req, r) => {
        ws.terminate();
        rej(new Error(`handshake refused: HTTP ${r.statusCode}`));
      });
      ws.once('error', rej);
    });
  }

  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }

  check() {
    const w = this.waiter;
    if (w === null) return;
    const done = w.done();
    if (!done && this.closeInfo === null) return;
    this.waiter = null;
    clearTimeout(w.timer);
    w.resolve(done ? 'ok' : 'closed');
  }

  /** Resolves 'ok' once done() holds (checked after every message), 'timeout' or 'closed'. */
  wait(done, timeoutMs) {
    if (done()) return Promise.resolve('ok');
    if (this.closeInfo !== null) return Promise.resolve('closed');
    return new Promise((res) => {
      const w = { done, resolve: res };
      w.timer = setTimeout(() => {
        if (this.waiter === w) this.waiter = null;
        res('timeout');
      }, timeoutMs);
      this.waiter = w;
    });
  }

  close() {
    this.closedByUs = true;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    else this.ws.terminate();
  }
}

/**
 * Connects and says hello as a fresh anonymous user: desktop, UTC (the offline tool's user
 * state), without consent, so the server neither stores a profile nor reads one back.
 * Returns the connection with its event and message token buckets (welcome.limits).
 */
async function openUser(ctx, user) {
  let conn;
  try {
    conn = await Conn.open(ctx.url, ctx.stats, ctx.o.timeoutMs);
  } catch (e) {
    ctx.stats.connectFailures += 1;
    throw e;
  }
  ctx.stats.connections += 1;
  let welcome = null;
  conn.handler = (msg) => {
    if (msg.type === 'welcome' || msg.type === 'error') welcome = msg;
  };
  conn.send({ type: 'hello', v: 1, user, device: 'desktop', tz_offset_min: 0, consent: false });
  const r = await conn.wait(() => welcome !== null, ctx.o.timeoutMs);
  if (r !== 'ok' || welcome.type !== 'welcome') {
    conn.close();
    throw new Error(`hello ${user}: ${r === 'ok' ? JSON.stringify(welcome) : r}`);
  }
  const limits = welcome.limits;
  ctx.limits ??= limits;
  const now = () => performance.now();
  conn.limits = limits;
  conn.events = new TokenBucket(limits.events_per_sec, limits.events_burst, now);
  // Messages other than events (subscribe, ping): 50/s, burst 100 (PROTOCOL.md §6).
  conn.messages = new TokenBucket(50, 100, now);
  return conn;
}

/**
 * Waits for `n` tokens and one in reserve (against arrival jitter, as the SDK keeps one), and
 * takes n. A bucket too shallow for the reserve gets none.
 */
async function takeTokens(bucket, n) {
  const need = Math.min(n + 1, Math.max(n, bucket.burst));
  while (bucket.available() < need) await sleep(Math.max(1, bucket.msUntil(need)));
  bucket.take(n);
}

/** An event of the data set as the wire carries it (PROTOCOL.md §2.1), under the id `id`. */
function wireEvent(ctx, ev, id) {
  const e = { id, kind: ev.kind, item: ctx.items.ids[ev.item], ts_ms: ev.ts + ctx.o.timeShiftMs };
  if (ev.value !== undefined) e.value = ev.value;
  return e;
}

/**
 * A session the server learns from and nothing is predicted in: its events in batches of
 * `max_batch`, paced by the token bucket; a 4020 empties the bucket and the refused events go
 * again (same ids) after the others were answered.
 */
async function runLearnSession(ctx, s) {
  const { stats } = ctx;
  const conn = await openUser(ctx, `${ctx.userPrefix}-${s.index}`);
  const byId = new Map(s.events.map((ev, t) => [`e${s.index}.${t}`, ev]));
  let queue = [...byId.keys()];
  let retry = [];
  let inFlight = 0;
  conn.handler = (msg) => {
    if (msg.type === 'ack') {
      for (const id of msg.ids) {
        if (byId.has(id)) {
          byId.delete(id);
          inFlight -= 1;
          stats.eventsAcked.learn += 1;
        }
      }
    } else if (msg.type === 'error' && msg.id !== undefined && byId.has(msg.id)) {
      inFlight -= 1;
      if (msg.code === 4020) {
        stats.rateLimited += 1;
        conn.events.drain();
        retry.push(msg.id);
      } else {
        byId.delete(msg.id);
        stats.eventsFailed += 1;
      }
    }
  };
  for (let round = 0; queue.length > 0 && round < 5; round++) {
    while (queue.length > 0 && conn.closeInfo === null) {
      const n = Math.min(conn.limits.max_batch, queue.length, Math.max(1, conn.events.available() - 1));
      await takeTokens(conn.events, n);
      const ids = queue.splice(0, n);
      conn.send({ type: 'events', events: ids.map((id) => wireEvent(ctx, byId.get(id), id)) });
      inFlight += ids.length;
      stats.eventsSent.learn += ids.length;
    }
    const r = await conn.wait(() => inFlight <= 0, ctx.o.timeoutMs + 2000);
    if (r !== 'ok') break;
    stats.retries += retry.length;
    queue = retry;
    retry = [];
  }
  if (byId.size > 0) {
    stats.eventsFailed += byId.size;
    if (conn.closeInfo !== null) stats.abortedSessions += 1;
  }
  conn.close();
}

/**
 * A test session: subscribe with k = 20, then send each event and wait for what it caused:
 * the `recs` whose `cause` is the event (pushed), or, when the server acknowledged the event
 * and two ping round trips brought no such list, the list in force (unchanged: the server
 * pushes only when the order changes). Lists on the wire are written before the `pong` of a
 * later ping (frames go out at the end of the turn that made them, queued messages before
 * lists), so the barrier only fails if the socket was choked; a list that still arrives later
 * is counted as `latePushes`.
 */
async function runTestSession(ctx, s) {
  const { stats, o } = ctx;
  let conn;
  try {
    conn = await openUser(ctx, `${ctx.userPrefix}-${s.index}`);
  } catch (e) {
    stats.abortedSessions += 1;
    stats.lost += s.scored.size;
    return;
  }
  let latest = null; // the recs of highest version: the list in force
  let pending = null; // the event waiting for its outcome
  const settled = new Set(); // events classified without their list
  let initial = null;
  conn.handler = (msg, at) => {
    switch (msg.type) {
      case 'recs':
        if (msg.surface !== SURFACE) break;
        if (latest !== null && msg.version < latest.version) stats.versionRegressions += 1;
        if (latest === null || msg.version > latest.version) latest = msg;
        if (msg.cause === undefined) initial ??= msg;
        else if (pending !== null && msg.cause === pending.id) {
          pending.recs ??= msg;
          pending.at ??= at;
        } else if (settled.has(msg.cause)) stats.latePushes += 1;
        break;
      case 'ack':
        if (pending !== null && msg.ids.includes(pending.id)) pending.acked = true;
        stats.eventsAcked.test += msg.ids.length;
        break;
      case 'error':
        if (msg.id === undefined) {
          initial ??= msg; // an error about subscribe carries no id
        } else if (pending !== null && msg.id === pending.id) {
          pending.error = msg;
        }
        break;
      case 'pong':
        if (pending !== null && msg.t === pending.pingT) pending.pongs += 1;
        break;
      default:
        break;
    }
  };
  await takeTokens(conn.messages, 1);
  conn.send({ type: 'subscribe', surface: SURFACE, k: K, ...(o.repeat !== 'never' && { repeat: o.repeat }) });
  if ((await conn.wait(() => initial !== null, o.timeoutMs)) !== 'ok' || initial.type !== 'recs') {
    stats.abortedSessions += 1;
    stats.lost += s.scored.size;
    conn.close();
    return;
  }
  let pingSeq = 0;
  const memory = new SessionMemory();
  for (let t = 0; t < s.events.length; t++) {
    const plan = s.scored.get(t);
    if (conn.closeInfo !== null) {
      if (plan) stats.lost += 1;
      continue;
    }
    const id = `e${s.index}.${t}`;
    const ev = wireEvent(ctx, s.events[t], id);
    let outcome = null;
    let sentAt = 0;
    for (let attempt = 0; outcome === null; attempt++) {
      await takeTokens(conn.events, 1);
      pending = { id, recs: null, at: null, acked: false, error: null, pongs: 0, pingT: -1 };
      sentAt = performance.now();
      conn.send({ type: 'event', ...ev });
      stats.eventsSent.test += 1;
      const deadline = sentAt + o.timeoutMs;
      let r = await conn.wait(() => pending.recs !== null || pending.error !== null || pending.acked, o.timeoutMs);
      // Acknowledged without its list yet: two ping round trips decide it is unchanged.
      while (r === 'ok' && pending.recs === null && pending.error === null && pending.pongs < 2) {
        await takeTokens(conn.messages, 1);
        pending.pingT = ++pingSeq;
        const want = pending.pongs + 1;
        conn.send({ type: 'ping', t: pending.pingT });
        r = await conn.wait(() => pending.recs !== null || pending.pongs >= want, Math.max(1, deadline - performance.now()));
      }
      if (r === 'closed') outcome = 'closed';
      else if (r === 'timeout') outcome = 'timeout';
      else if (pending.recs !== null) outcome = 'pushed';
      else if (pending.error !== null && pending.error.code === 4020 && attempt < 5) {
        stats.rateLimited += 1;
        stats.retries += 1;
        conn.events.drain();
      } else if (pending.error !== null) {
        if (pending.error.code === 4020) stats.rateLimited += 1;
        outcome = 'error';
      } else outcome = 'unchanged';
    }
    if (outcome === 'unchanged') stats.unchangedAll += 1;
    if (outcome === 'timeout') stats.timeoutsAll += 1;
    if (outcome === 'unchanged' || outcome === 'timeout') settled.add(id);
    if (outcome === 'error') stats.eventsFailed += 1;
    const done = pending;
    pending = null;
    if (outcome === 'pushed' || outcome === 'unchanged') memory.observe(s.events[t]);
    // The check that lists leave the session's items out holds only when the list asked so.
    if (outcome === 'pushed' && o.repeat === 'never') memory.check(done.recs.items.map((it) => ctx.items.index.get(it.item) ?? -1), stats);
    if (!plan) continue;
    let list = null;
    if (outcome === 'pushed') {
      stats.pushed += 1;
      stats.latencyMs.push(done.at - sentAt);
      stats.tookUs.push(done.recs.took_us);
      list = done.recs.items;
    } else if (outcome === 'unchanged' || outcome === 'error') {
      if (outcome === 'unchanged') stats.unchanged += 1;
      else stats.errored += 1;
      list = latest.items;
    } else if (outcome === 'timeout') {
      stats.timeouts += 1;
    } else {
      stats.lost += 1;
    }
    const ranked = list && list.map((it) => ctx.items.index.get(it.item) ?? -1);
    if (plan.repeat && ranked && ranked.includes(plan.target)) stats.repeatHits += 1;
    ctx.live.score(ranked, plan.target);
  }
  if (conn.closeInfo !== null && conn.closeInfo.code !== 1000) stats.abortedSessions += 1;
  conn.close();
}

/**
 * What a session's state on the server remembers of it (src/engine/engine.c): the items of its
 * last 32 events (impressions and dismissals aside) and up to 64 purchased or dismissed items,
 * none of which a list may show (docs/engine.md, Rules); and every item it acted on, which a
 * list may show again once the state has forgotten it (a diagnostic, not an error).
 */
class SessionMemory {
  constructor() {
    this.recent = [];
    this.excluded = [];
    this.acted = new Set();
  }

  observe(ev) {
    if (ev.kind === 'impression') return;
    this.acted.add(ev.item);
    if (ev.kind === 'dismiss' || ev.kind === 'purchase') {
      if (!this.excluded.includes(ev.item)) this.excluded.push(ev.item);
      if (this.excluded.length > 64) this.excluded.shift();
    }
    if (ev.kind === 'dismiss') return;
    this.recent.push(ev.item);
    if (this.recent.length > 32) this.recent.shift();
  }

  check(list, stats) {
    if (list.some((it) => this.recent.includes(it) || this.excluded.includes(it))) stats.listsShowingRemembered += 1;
    else if (list.some((it) => this.acted.has(it))) stats.listsShowingOlder += 1;
  }
}

/** Runs `fn` over `list` with at most `n` in flight, taking items in order. */
async function pool(list, n, fn) {
  let next = 0;
  const worker = async () => {
    while (next < list.length) await fn(list[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(n, list.length) }, worker));
}

// ---------------------------------------------------------------------------------------------
// Report

function machine() {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    if (dirty !== '') commit += '-dirty';
  } catch {
    // Not a git checkout.
  }
  return { nproc: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown CPU', kernel: `Linux ${release()}`, node: process.version, commit };
}

const f4 = (x) => (x === null || x === undefined ? '–' : x.toFixed(4));
const f3 = (x) => (x === null || x === undefined ? '–' : x.toFixed(3));
const f1 = (x) => (x === null || x === undefined ? '–' : x.toFixed(1));

function reportMd(r) {
  const c = r.counts;
  const lines = [];
  lines.push(`# live-replay: ${r.label}, ${r.stamp}`, '');
  lines.push(
    `Input: \`${r.input}\`. ${r.items} items; ${c.train_sessions} train sessions, ${c.test_sessions} test sessions ` +
      `(${c.predicted_sessions} predicted), ${c.predictions} predictions (the list pushed after each event scored against the ` +
      `next item), of which ${c.repeat_targets} repeat an item of the session (POP cannot hit them; the server only once ` +
      `its bounded session state has forgotten the item). Events on items a ` +
      `closed catalog does not know: ${c.dropped_unknown}.`,
    '',
  );
  lines.push(`Machine: ${r.machine.nproc} CPUs, ${r.machine.cpu}, ${r.machine.kernel}, Node ${r.machine.node}; commit ${r.machine.commit}. ` +
    `Load average ${r.loadavg.start.map((x) => x.toFixed(2)).join(' ')} at the start, ${r.loadavg.end.map((x) => x.toFixed(2)).join(' ')} at the end.`, '');
  lines.push(`Server: ${r.server.spawned ? '`' + r.server.command.join(' ') + '`' : r.server.url + ' (already running)'}; limits ${JSON.stringify(r.server.limits)}.`, '');
  if (r.timeShiftDays) lines.push(`Event times moved by ${r.timeShiftDays} days (--time-shift-days).`, '');
  lines.push(
    `Replay: ${r.options.train_concurrency} learn-only sessions and ${r.options.concurrency} test sessions in flight (one ` +
      `connection and one anonymous user each), list timeout ${r.options.timeout_ms} ms. Run time ${f1(r.seconds.total)} s ` +
      `(learn ${f1(r.seconds.learn)} s, test ${f1(r.seconds.test)} s).`,
    '',
  );
  lines.push('| method | HR@10 | HR@20 | MRR@20 | NDCG@20 | coverage@20 |', '|---|---|---|---|---|---|');
  for (const m of [r.methods.live, r.methods.pop]) {
    lines.push(`| ${m.name} | ${f4(m.hr10)} | ${f4(m.hr20)} | ${f4(m.mrr20)} | ${f4(m.ndcg20)} | ${f3(m.coverage20)} |`);
  }
  lines.push('');
  lines.push('| events sent (learn / test) | acked | not acked | scored | pushed | unchanged | timeouts | refused | lost | late lists | rate limited (4020) | errors by code | unexpected closes |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  lines.push(
    `| ${c.events_sent.learn} / ${c.events_sent.test} | ${c.events_acked.learn} / ${c.events_acked.test} | ${c.events_failed} | ${c.predictions} | ${c.pushed} | ${c.unchanged} | ` +
      `${c.timeouts} | ${c.refused} | ${c.lost} | ${c.late_pushes} | ${c.rate_limited} | ${JSON.stringify(c.errors)} | ${JSON.stringify(c.closes)} |`,
  );
  lines.push('');
  lines.push(
    `Checks of the pushed lists: ${c.lists_showing_remembered_items} showed an item the session's state remembers ` +
      `(its last 32 items, purchases and dismissals: never allowed); ${c.lists_showing_older_session_items} showed an item ` +
      `the session acted on before that (allowed: the state is bounded), hitting ${c.repeat_targets_hit} of the ` +
      `${c.repeat_targets} repeated targets; ${c.version_regressions} arrived with a version below one already received.`,
    '',
  );
  const l = r.latency;
  lines.push('| event → list (scored events with a pushed list) | n | p50 | p90 | p99 | p99.9 | max |', '|---|---|---|---|---|---|---|');
  lines.push(`| client, send → recs received (ms) | ${l.client_ms.n} | ${f3(l.client_ms.p50)} | ${f3(l.client_ms.p90)} | ${f3(l.client_ms.p99)} | ${f3(l.client_ms.p999)} | ${f3(l.client_ms.max)} |`);
  lines.push(`| server, \`took_us\` (µs) | ${l.server_took_us.n} | ${f1(l.server_took_us.p50)} | ${f1(l.server_took_us.p90)} | ${f1(l.server_took_us.p99)} | ${f1(l.server_took_us.p999)} | ${f1(l.server_took_us.max)} |`);
  lines.push('');
  lines.push(
    'POP is computed by this tool on the same split, in strict time order, from train and completed test sessions ' +
      '(bench/eval/knn.c, same tie order): it matches rankcast-eval\'s POP. Unchanged: the server acknowledged the event ' +
      'and pushed no new list (it pushes only when the order changes); the list in force is scored. Timeouts and lost ' +
      'events count as misses.',
  );
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Main

export async function main(argv) {
  const o = parseOptions(argv);
  const log = o.quiet ? () => {} : (line) => process.stderr.write(`live-replay: ${line}\n`);
  const t0 = performance.now();
  const loadStart = loadavg();
  const d = loadDataset(o);
  const { popMetrics, predictions, repeatTargets } = planAndScorePop(d, o.testSample);
  const train = d.sessions.filter((s) => !s.test);
  const test = d.sessions.filter((s) => s.test);
  log(
    `${d.sessions.length} sessions (${train.length} train, ${test.length} test), ${predictions} predictions, ` +
      `${d.items.ids.length} items; loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  let server = null;
  if (o.spawn) server = await spawnServer(o, log);
  const url = server ? server.url : o.url;
  const httpUrl = url.replace(/^ws/, 'http').replace(/\/ws$/, '');
  const stats = new Stats();
  const ctx = {
    o,
    url,
    stats,
    items: d.items,
    live: new Metrics(d.items.ids.length),
    limits: null,
    // A fresh prefix per run: a server that ran before holds no session of these users.
    userPrefix: `anon-lr${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`,
  };
  const badIds = d.items.ids.filter((id) => !ID_RE.test(id)).length;
  if (badIds > 0) log(`warning: ${badIds} item ids are not protocol ids (PROTOCOL.md §2): their events will be refused`);
  const before = await serverCounters(httpUrl);

  let done = 0;
  let total = 0;
  let phase = '';
  const progress = o.quiet ? null : setInterval(() => log(`${phase}: ${done}/${total} sessions, ${stats.eventsSent.learn + stats.eventsSent.test} events sent`), 5000);
  const count = (fn) => async (s) => {
    try {
      await fn(ctx, s);
    } catch (e) {
      stats.abortedSessions += 1;
      if (s.scored) stats.lost += s.scored.size;
      log(`session ${s.index}: ${e.message}`);
    }
    done += 1;
  };
  const seconds = {};
  try {
    // Train sessions first, in order of their first event; then every test session, those not
    // predicted (--test-sample) learned only, as rankcast-eval learns them.
    phase = 'learn';
    total = train.length;
    const tLearn = performance.now();
    await pool(train, o.trainConcurrency, count(runLearnSession));
    seconds.learn = (performance.now() - tLearn) / 1000;
    phase = 'test';
    done = 0;
    total = test.length;
    const tTest = performance.now();
    await pool(test, o.concurrency, count((c, s) => (s.predict ? runTestSession(c, s) : runLearnSession(c, s))));
    seconds.test = (performance.now() - tTest) / 1000;
  } catch (e) {
    if (server) await server.stop();
    throw e;
  } finally {
    if (progress) clearInterval(progress);
  }
  const after = await serverCounters(httpUrl);
  let serverExit = null;
  if (server) serverExit = await server.stop();
  seconds.total = (performance.now() - t0) / 1000;

  const live = { name: 'rankcast server (live)', ...ctx.live.summary() };
  const pop = { name: 'POP (this tool)', ...popMetrics.summary() };
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const serverDelta = before && after ? Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]])) : null;
  const report = {
    label: o.label,
    stamp,
    input: o.prepared ?? o.events ?? `${o.train} + ${o.test}`,
    catalog: o.catalog ?? null,
    timeShiftDays: o.timeShiftMs / 86400000,
    machine: machine(),
    loadavg: { start: loadStart, end: loadavg() },
    server: {
      spawned: Boolean(server),
      url,
      command: server ? server.command : null,
      limits: ctx.limits,
      exit: serverExit,
      counters: serverDelta,
    },
    options: {
      concurrency: o.concurrency,
      train_concurrency: o.trainConcurrency,
      timeout_ms: o.timeoutMs,
      test_sample: o.testSample,
      event_kind: o.kind,
      targets: o.targets,
      repeat: o.repeat,
      test_fraction: o.testFraction,
      session_gap_s: o.sessionGapMs / 1000,
      catalog_prior: o.catalogPrior,
      k: K,
    },
    items: d.items.ids.length,
    counts: {
      train_sessions: train.length,
      test_sessions: test.length,
      predicted_sessions: test.filter((s) => s.predict).length,
      predictions,
      repeat_targets: repeatTargets,
      dropped_unknown: d.items.droppedUnknown,
      connections: stats.connections,
      connect_failures: stats.connectFailures,
      events_sent: stats.eventsSent,
      events_acked: stats.eventsAcked,
      events_failed: stats.eventsFailed,
      pushed: stats.pushed,
      unchanged: stats.unchanged,
      unchanged_all_test_events: stats.unchangedAll,
      timeouts: stats.timeouts,
      timeouts_all_test_events: stats.timeoutsAll,
      refused: stats.errored,
      lost: stats.lost,
      late_pushes: stats.latePushes,
      version_regressions: stats.versionRegressions,
      lists_showing_remembered_items: stats.listsShowingRemembered,
      lists_showing_older_session_items: stats.listsShowingOlder,
      repeat_targets_hit: stats.repeatHits,
      aborted_sessions: stats.abortedSessions,
      rate_limited: stats.rateLimited,
      retries: stats.retries,
      errors: stats.errors,
      closes: stats.closes,
    },
    methods: { live, pop },
    latency: { client_ms: distribution(stats.latencyMs), server_took_us: distribution(stats.tookUs) },
    seconds,
  };
  const md = reportMd(report);
  process.stdout.write(md);
  if (o.resultsDir !== '-') {
    mkdirSync(o.resultsDir, { recursive: true });
    const base = join(o.resultsDir, `live-${o.label}-${stamp}`);
    writeFileSync(`${base}.md`, md);
    writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
    log(`wrote ${base}.json and .md`);
  }
  if (serverExit && (serverExit.code !== 0 || serverExit.signal !== null)) {
    log(`server exited ${JSON.stringify(serverExit)}:\n${server.output()}`);
    process.exitCode = 1;
  }
  return report;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`live-replay: ${e.stack ?? e}\n`);
    process.exit(1);
  });
}

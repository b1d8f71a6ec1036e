// SPDX-License-Identifier: Apache-2.0
// Test harness for rankcast integration tests: starts the real server binary on a free port with
// a fixture catalog, connects WebSocket clients on either subprotocol, and gives each client a
// message queue with `next(predicate, timeoutMs)`. Written from proto/PROTOCOL.md alone.

import assert from 'node:assert/strict';
import { get as httpGetRaw } from 'node:http';
import { get as httpsGetRaw, request as httpsRequestRaw } from 'node:https';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { decode, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const ENCODINGS = ['json', 'msgpack'];
export const SUBPROTOCOL = { json: 'rankcast.v1.json', msgpack: 'rankcast.v1.msgpack' };

/** Error codes of PROTOCOL.md §3: name and whether the server closes right after. */
export const ERRORS = {
  4000: { name: 'malformed', fatal: false },
  4001: { name: 'unknown_type', fatal: false },
  4002: { name: 'invalid_field', fatal: false },
  4003: { name: 'too_large', fatal: true },
  4004: { name: 'hello_required', fatal: false },
  4005: { name: 'hello_repeated', fatal: false },
  4006: { name: 'unsupported_version', fatal: true },
  4007: { name: 'wrong_frame_kind', fatal: false },
  4008: { name: 'too_many_errors', fatal: true },
  4010: { name: 'unauthorized', fatal: true },
  4011: { name: 'token_expired', fatal: true },
  4012: { name: 'unknown_item', fatal: false },
  4013: { name: 'anonymous_id_refused', fatal: true },
  4020: { name: 'rate_limited', fatal: false },
  4021: { name: 'too_many_subscriptions', fatal: false },
  4022: { name: 'batch_too_large', fatal: false },
  4023: { name: 'idle_timeout', fatal: true },
  4040: { name: 'unknown_surface', fatal: false },
  4050: { name: 'slow_consumer', fatal: true },
  4500: { name: 'internal', fatal: false },
  4503: { name: 'unavailable', fatal: false },
};

/** Default limits of PROTOCOL.md §6, in force on a server started without overrides. */
export const DEFAULT_LIMITS = {
  max_message_bytes: 65536,
  max_batch: 100,
  max_subscriptions: 16,
  max_k: 100,
  events_per_sec: 200,
  events_burst: 400,
};

const ID_RE = /^[A-Za-z0-9._:@-]{1,64}$/;
const SURFACE_RE = /^[a-z0-9_-]{1,32}$/;
const SOURCES = new Set(['covisit', 'content', 'trending', 'popular', 'explore', 'pinned', 'repeat']);

export const isId = (s) => typeof s === 'string' && Buffer.byteLength(s) <= 64 && ID_RE.test(s);
export const isInt = (n) => Number.isInteger(n) && Math.abs(n) <= 2 ** 53;

let uniqueCounter = 0;
/** An id no other test in this process uses: for users and events. */
export function uniqueId(prefix) {
  uniqueCounter += 1;
  return `${prefix}-${process.pid}-${uniqueCounter}`;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Fixture catalog

const FIXTURE_CATEGORIES = {
  'candles-lights': { display: 'Candles & lights', tags: ['candle', 'light'], nouns: ['T-Light Holder', 'Lantern', 'Candle', 'Fairy Lights'] },
  kitchen: { tags: ['kitchen', 'baking'], nouns: ['Cake Stand', 'Mug', 'Tea Towel', 'Baking Tin'] },
  'home-decor': { display: 'Home decor', tags: ['decor', 'wall'], nouns: ['Coat Hanger', 'Nesting Boxes', 'Hot Water Bottle', 'Wall Sign'] },
  christmas: { tags: ['christmas', 'festive'], nouns: ['Bauble', 'Advent Calendar', 'Stocking', 'Tree Topper'] },
  bags: { tags: ['bag', 'tote'], nouns: ['Jumbo Bag', 'Lunch Bag', 'Shopper', 'Charlotte Bag'] },
  stationery: { tags: ['paper', 'desk'], nouns: ['Notebook', 'Pencil Set', 'Gift Wrap', 'Greeting Card'] },
};
/** The display name of each fixture category that has one (the words of its reasons). */
export const FIXTURE_CATEGORY_NAMES = Object.fromEntries(
  Object.entries(FIXTURE_CATEGORIES).filter(([, spec]) => spec.display !== undefined).map(([slug, spec]) => [slug, spec.display]),
);
const COLOURS = ['Red', 'White', 'Pink', 'Blue', 'Green', 'Cream'];

/**
 * Catalog ids that proto/vectors/vectors.json refers to, pinned to a category so the vectors
 * test can send its events to a server that knows them.
 */
const PINNED_ITEMS = {
  'candles-lights': [
    { id: '85123A', name: 'White Hanging Heart T-Light Holder', price: 2.55 },
    { id: '21730', name: 'Glass Star Frosted T-Light Holder', price: 4.25 },
    { id: '71053', name: 'White Metal Lantern', price: 3.39 },
  ],
  kitchen: [{ id: '22423', name: 'Regency Cakestand 3 Tier', price: 12.75 }],
  'home-decor': [
    { id: '84029E', name: 'Red Woolly Hottie White Heart', price: 3.39 },
    { id: '22752', name: 'Set 7 Babushka Nesting Boxes', price: 7.65 },
    { id: '84406B', name: 'Cream Cupid Hearts Coat Hanger', price: 2.75 },
  ],
};

export const FIXTURE_PER_CATEGORY = 12;

/**
 * Builds the fixture catalog: 6 categories of 12 items (72), deterministic, with the ids the
 * vectors use; the first item of a category with a display name carries it (`category_name`
 * names the category for all its items), the others leave it to the catalog. Returns the items
 * as objects.
 */
export function fixtureItems() {
  const items = [];
  let n = 0;
  for (const [category, spec] of Object.entries(FIXTURE_CATEGORIES)) {
    const pinned = PINNED_ITEMS[category] ?? [];
    for (let i = 0; i < FIXTURE_PER_CATEGORY; i++) {
      n += 1;
      const noun = spec.nouns[i % spec.nouns.length];
      const colour = pinned[i] ? (COLOURS.find((c) => pinned[i].name.includes(c)) ?? 'White') : COLOURS[i % COLOURS.length];
      const base = pinned[i] ?? {
        id: `FX${String(n).padStart(3, '0')}`,
        name: `${colour} ${noun}`,
        price: Math.round((1 + ((n * 37) % 200) / 10) * 100) / 100,
      };
      items.push({
        id: base.id,
        name: base.name,
        category,
        ...(spec.display !== undefined && i === 0 ? { category_name: spec.display } : {}),
        tags: [...spec.tags, colour.toLowerCase()],
        price: base.price,
      });
    }
  }
  return items;
}

/** Writes the fixture catalog as JSONL into `dir`; returns {path, items}. */
export function writeFixtureCatalog(dir) {
  const items = fixtureItems();
  const path = join(dir, 'catalog.jsonl');
  writeFileSync(path, items.map((it) => JSON.stringify(it)).join('\n') + '\n');
  return { path, items };
}

/** Reads a JSONL catalog: the items the server under test knows. */
export function readCatalog(path) {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line));
}

// ---------------------------------------------------------------------------------------------
// Server process

export function serverBinary() {
  return process.env.RANKCAST_BIN ? resolve(process.env.RANKCAST_BIN) : join(REPO_ROOT, 'build/server/rankcast');
}

/** A TCP port nothing listens on now (the kernel's pick); shared by every test harness. */
export async function freePort() {
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

/** The last `limit` characters a stream wrote: enough to explain a failure, bounded. */
class TailBuffer {
  constructor(limit = 64 * 1024) {
    this.limit = limit;
    this.text = '';
  }

  push(chunk) {
    this.text = (this.text + chunk.toString()).slice(-this.limit);
  }
}

/**
 * Starts `rankcast` on a free port with the fixture catalog (or RANKCAST_CATALOG) and waits until
 * GET /healthz answers 200. Returns a handle; `stop()` sends SIGTERM and reports how it exited.
 */
/**
 * RC_IT_LOOPS=N runs every server of a suite with N event loops (--loops), except those
 * the first version of several loops refuses (docs/engine.md, "Loops in one node"): the
 * integration.loops2.* tests run suites this way.
 */
function loopsArgs(extraArgs) {
  const loops = process.env.RC_IT_LOOPS;
  const refused = ['--data-dir', '--kafka', '--workers', '--loops'];
  if (!loops || extraArgs.some((a) => refused.includes(a))) return [];
  return ['--loops', loops];
}

export async function startServer({ extraArgs = [], readyTimeoutMs = 15000, tls = null } = {}) {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(`rankcast binary not found at ${bin}: build it first (or set RANKCAST_BIN)`);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'rankcast-it-'));
  const fixture = writeFixtureCatalog(tmp);
  const catalogPath = process.env.RANKCAST_CATALOG ? resolve(process.env.RANKCAST_CATALOG) : fixture.path;
  const items = readCatalog(catalogPath);
  const port = await freePort();
  // Anonymous sessions, as most suites speak for users without tokens; auth.test.mjs turns
  // them off (a later flag wins). The suites name their users, so anonymous ids are the ones
  // clients choose; security.test.mjs passes --anonymous-ids signed to test issued ids.
  const args = ['--port', String(port), '--catalog', catalogPath, '--node-id', 'it1', '--log-level', 'warn', '--anonymous', '--anonymous-ids', 'chosen', ...extraArgs, ...loopsArgs(extraArgs)];
  const output = new TailBuffer();
  // The server also reads RANKCAST_* settings from its environment; the tests' own environment
  // must not configure it behind their back (a RANKCAST_KAFKA left set, say).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RANKCAST_')));
  const proc = spawn(bin, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d) => output.push(d));
  proc.stderr.on('data', (d) => output.push(d));
  const exited = new Promise((res) => {
    proc.on('exit', (code, signal) => res({ code, signal }));
  });
  let exitResult = null;
  exited.then((r) => {
    exitResult = r;
  });

  // With `tls` ({ca}: the PEM the server's certificate chains to), URLs are https/wss.
  const scheme = tls ? 's' : '';
  const server = {
    port,
    host: '127.0.0.1',
    tls,
    httpUrl: `http${scheme}://127.0.0.1:${port}`,
    wsUrl: `ws${scheme}://127.0.0.1:${port}/ws`,
    items,
    catalogPath,
    proc,
    args,
    output: () => output.text,
    exited,
    get exitResult() {
      return exitResult;
    },
  };
  let stopping = null;
  /**
   * Sends SIGTERM once and waits up to `timeoutMs` for the exit; kills with SIGKILL after that.
   * Resolves to {code, signal, timedOut, ms}. Idempotent: later calls get the same result.
   */
  server.stop = (timeoutMs = 5000) => {
    if (stopping) return stopping;
    stopping = (async () => {
      const t0 = performance.now();
      if (exitResult === null) proc.kill('SIGTERM');
      let timer;
      const timedOut = await Promise.race([
        exited.then(() => false),
        new Promise((res) => {
          timer = setTimeout(() => res(true), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        proc.kill('SIGKILL');
        await exited;
      }
      rmSync(tmp, { recursive: true, force: true });
      return { ...exitResult, timedOut, ms: performance.now() - t0 };
    })();
    return stopping;
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exitResult !== null) {
      throw new Error(`rankcast exited during start (${JSON.stringify(exitResult)}): ${bin} ${args.join(' ')}\n${output.text}`);
    }
    try {
      // On a connection that closes: a pooled one would stay open on the server for its
      // keep-alive time (5 s), and tests that count the server's descriptors from here
      // (chaos) would count it, then miss it (issue S 12: "13, not 14" on a loaded machine).
      if ((await httpGetFresh(server, '/healthz', 1000)).status === 200) return server;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`rankcast not ready within ${readyTimeoutMs} ms: ${bin} ${args.join(' ')}\n${output.text}`);
    }
    await sleep(50);
  }
}

/** Stops the server and asserts it exited 0 on SIGTERM within 5 s (the after() of every file). */
export async function stopServerCleanly(server) {
  if (!server) return;
  const r = await server.stop(5000);
  assert.equal(r.timedOut, false, `rankcast did not exit within 5 s of SIGTERM\n${server.output()}`);
  assert.equal(r.signal, null, `rankcast died of signal ${r.signal}\n${server.output()}`);
  assert.equal(r.code, 0, `rankcast exited ${r.code} after SIGTERM\n${server.output()}`);
}

// ---------------------------------------------------------------------------------------------
// HTTP

export async function httpGet(server, path, timeoutMs = 5000) {
  if (server.tls) return httpsRequest(server, 'GET', path, null, {}, timeoutMs);
  const res = await fetch(`${server.httpUrl}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  const body = await res.text();
  return { status: res.status, headers: res.headers, body };
}

/**
 * One request to the admin API of `server`: `body` (an object, or a string sent as it is) as
 * JSON, or none for a GET; `token` null sends no credential. Resolves to {status, text, json}
 * (json null when the answer is not JSON).
 */
export async function adminRequest(server, method, path, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${server.httpUrl}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: left null.
  }
  return { status: res.status, text, json };
}

/**
 * GET on a new TCP connection that closes after the answer (no keep-alive): with several
 * worker processes on one port (SO_REUSEPORT) successive requests can land on different
 * workers, and no pooled connection stays open on the server. Over TLS when the server
 * speaks it, trusting the test's CA. Resolves to {status, body}.
 */
export function httpGetFresh(server, path, timeoutMs = 5000) {
  const get = server.tls ? httpsGetRaw : httpGetRaw;
  return new Promise((res, rej) => {
    const options = { host: server.host, port: server.port, path, agent: false, headers: { connection: 'close' }, ca: server.tls?.ca };
    const req = get(options, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (d) => {
        body += d;
      });
      r.on('end', () => res({ status: r.statusCode, body }));
      r.on('error', rej);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', rej);
  });
}

/** A request over TLS trusting only the test's CA (fetch cannot be given one). */
export function httpsRequest(server, method, path, body, headers = {}, timeoutMs = 5000) {
  return new Promise((res, rej) => {
    const req = httpsRequestRaw(`${server.httpUrl}${path}`, { method, headers, ca: server.tls.ca, timeout: timeoutMs }, (r) => {
      const chunks = [];
      r.on('data', (c) => chunks.push(c));
      r.on('end', () => res({ status: r.statusCode, headers: new Headers(Object.entries(r.headers).map(([k, v]) => [k, String(v)])), body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end(body ?? undefined);
  });
}

/**
 * Parses Prometheus text exposition: returns {samples: [{name, labels, value}], bad: [lines]},
 * where `bad` holds lines that are neither comments nor `name{labels} value [timestamp]`.
 */
export function parsePrometheus(text) {
  const samples = [];
  const bad = [];
  const re = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?[ \t]+(\S+)([ \t]+-?\d+)?$/;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      if (/^# TYPE /.test(line) && !/^# TYPE \S+ (counter|gauge|histogram|summary|untyped)$/.test(line)) bad.push(line);
      continue;
    }
    const m = re.exec(line);
    const value = m ? (m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4])) : NaN;
    if (!m || (Number.isNaN(value) && m[4] !== 'NaN')) {
      bad.push(line);
      continue;
    }
    samples.push({ name: m[1], labels: m[3] ?? '', value });
  }
  return { samples, bad };
}

/** Sum of the samples of each metric name: {name: total}. */
export function metricTotals(samples) {
  const totals = {};
  for (const s of samples) totals[s.name] = (totals[s.name] ?? 0) + s.value;
  return totals;
}

// ---------------------------------------------------------------------------------------------
// WebSocket clients

const createdClients = [];

/**
 * One WebSocket connection. Every message received goes to `log` (all, in order) and to an inbox
 * from which `next()` takes the first match. Frames of the wrong kind for the subprotocol or that
 * do not decode are recorded in `badFrames` and show up in the inbox as `{type: '__bad_frame'}`.
 */
export class Client {
  constructor(ws, enc, { track = true } = {}) {
    this.ws = ws;
    this.enc = enc;
    this.log = [];
    this.inbox = [];
    this.waiters = [];
    this.badFrames = [];
    this.versionViolations = [];
    this.lastVersion = new Map();
    this.arrival = new WeakMap();
    this.sizes = new WeakMap();
    this.closeInfo = null;
    this.closed = new Promise((res) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.waiters.splice(0)) w.onClose();
        res(this.closeInfo);
      });
    });
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    ws.on('error', () => {
      // A close follows; `closed` reports it.
    });
    if (track) createdClients.push(this);
  }

  onFrame(data, isBinary) {
    const at = performance.now();
    let msg;
    const wantBinary = this.enc === 'msgpack';
    try {
      if (isBinary !== wantBinary) throw new Error(`${isBinary ? 'binary' : 'text'} frame on ${this.enc}`);
      msg = wantBinary ? decode(data) : JSON.parse(data.toString('utf8'));
      if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) throw new Error('not a map');
    } catch (e) {
      msg = { type: '__bad_frame', why: e.message, raw: Buffer.from(data).toString(isBinary ? 'hex' : 'utf8').slice(0, 200) };
      this.badFrames.push(msg);
    }
    this.arrival.set(msg, at);
    this.sizes.set(msg, data.length);
    this.checkVersion(msg);
    this.log.push(msg);
    this.inbox.push(msg);
    this.dispatch();
  }

  /** Records a recs whose version goes backwards, or repeats for a pushed (caused) list. */
  checkVersion(msg) {
    if (msg.type !== 'recs' || !isInt(msg.version)) return;
    const prev = this.lastVersion.get(msg.surface);
    if (prev !== undefined && (msg.version < prev || (msg.version === prev && msg.cause !== undefined))) {
      this.versionViolations.push({ surface: msg.surface, prev, version: msg.version, cause: msg.cause });
    }
    this.lastVersion.set(msg.surface, Math.max(prev ?? msg.version, msg.version));
  }

  dispatch() {
    for (let w = 0; w < this.waiters.length; ) {
      const waiter = this.waiters[w];
      const i = this.inbox.findIndex(waiter.pred);
      if (i >= 0) {
        const [msg] = this.inbox.splice(i, 1);
        this.waiters.splice(w, 1);
        waiter.resolve(msg);
      } else {
        w += 1;
      }
    }
  }

  /** Bytes of the WebSocket message that carried `msg` (as received, after any inflating). */
  sizeOf(msg) {
    return this.sizes.get(msg);
  }

  /** Milliseconds (performance.now()) at which `msg` arrived. */
  arrivedAt(msg) {
    return this.arrival.get(msg);
  }

  send(msg) {
    if (this.enc === 'msgpack') this.ws.send(encode(msg), { binary: true });
    else this.ws.send(JSON.stringify(msg), { binary: false });
  }

  /** Sends bytes or text as one message of the given frame kind, unchanged. */
  sendRaw(data, { binary }) {
    this.ws.send(data, { binary });
  }

  /** Sends one message in several WebSocket fragments (a first frame and continuations). */
  sendFragments(parts, { binary }) {
    parts.forEach((part, i) => this.ws.send(part, { binary, fin: i === parts.length - 1 }));
  }

  /** Encodes `msg` for this client's subprotocol: a string (JSON) or a Buffer (MessagePack). */
  encodeMessage(msg) {
    return this.enc === 'msgpack' ? Buffer.from(encode(msg)) : JSON.stringify(msg);
  }

  /**
   * Resolves to the first message (already received or arriving within `timeoutMs`) that matches
   * `pred` — a function, or a type name — and removes it from the inbox. Rejects on timeout or
   * close with the messages seen so far.
   */
  next(pred = () => true, timeoutMs = 3000) {
    const match = typeof pred === 'string' ? (m) => m.type === pred : pred;
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    return new Promise((res, rej) => {
      const describe = (why) =>
        new Error(
          `${this.enc}: ${why} waiting for ${typeof pred === 'string' ? pred : pred.toString()}; ` +
            `received: ${JSON.stringify(this.log.slice(-12)).slice(0, 3000)}`,
        );
      const waiter = {
        pred: match,
        resolve: (m) => {
          clearTimeout(timer);
          res(m);
        },
        onClose: () => {
          clearTimeout(timer);
          rej(describe(`connection closed (${JSON.stringify(this.closeInfo)})`));
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        rej(describe(`timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      if (this.closeInfo) {
        waiter.onClose();
        return;
      }
      this.waiters.push(waiter);
    });
  }

  /** The next message of any kind: the strict "the answer to what I just sent" form. */
  nextAny(timeoutMs = 3000) {
    return this.next(() => true, timeoutMs);
  }

  /** Waits for an error with `code`; asserts its name and fatality per the code table. */
  async nextError(code, timeoutMs = 3000) {
    const err = await this.next((m) => m.type === 'error', timeoutMs);
    assertError(err, code);
    return err;
  }

  /** Asserts that nothing matching `pred` arrives within `ms` (and takes nothing from the inbox). */
  async expectNone(pred = () => true, ms = 500) {
    const match = typeof pred === 'string' ? (m) => m.type === pred : pred;
    await sleep(ms);
    const hit = this.inbox.find(match);
    assert.equal(hit, undefined, `${this.enc}: unexpected message ${JSON.stringify(hit)}`);
  }

  /** Resolves to {code, reason} once closed; rejects if not closed within `timeoutMs`. */
  async waitClose(timeoutMs = 3000) {
    let timer;
    const timeout = new Promise((_, rej) => {
      timer = setTimeout(
        () => rej(new Error(`${this.enc}: not closed within ${timeoutMs} ms; received: ${JSON.stringify(this.log.slice(-8))}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends ping with a unique `t` and waits for its pong: proof the connection still works. */
  async roundTrip(timeoutMs = 3000) {
    const t = Math.floor(Math.random() * 1e9) + 0.5;
    this.send({ type: 'ping', t });
    const pong = await this.next((m) => m.type === 'pong' && m.t === t, timeoutMs);
    assertPong(pong, t);
    return pong;
  }

  /** Sends hello (v 1 plus `fields`) and returns the welcome, asserting its shape. */
  async hello(fields = {}) {
    this.send({ type: 'hello', v: 1, ...fields });
    const welcome = await this.next((m) => m.type === 'welcome' || m.type === 'error');
    assert.equal(welcome.type, 'welcome', `hello ${JSON.stringify(fields)} answered with ${JSON.stringify(welcome)}`);
    // A token's subject is the user; without one the user is the one asked for, or anon-….
    assertWelcome(welcome, fields.token !== undefined ? welcome.user : fields.user);
    return welcome;
  }

  /** Subscribes and returns the immediate recs of that surface. */
  async subscribe(surface, params = {}) {
    this.send({ type: 'subscribe', surface, ...params });
    const recs = await this.next((m) => (m.type === 'recs' && m.surface === surface && m.cause === undefined) || m.type === 'error');
    assert.equal(recs.type, 'recs', `subscribe ${surface} answered with ${JSON.stringify(recs)}`);
    assertRecs(recs, { surface });
    return recs;
  }

  /** Closes with 1000 (a normal close, as a polite client would). */
  close() {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    else if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

/**
 * Opens a WebSocket to the server offering the subprotocol of `enc` (or `protocols` as given) and
 * resolves once open. `perMessageDeflate` is off unless asked for, so sizes on the wire are the
 * message sizes. A tracked client (the default) is closed by the next closeAllClients().
 */
export function connect(server, enc, { protocols, perMessageDeflate = false, path = '/ws', track = true, headers, origin, autoPong = true, localAddress } = {}) {
  const offer = protocols !== undefined ? protocols : [SUBPROTOCOL[enc]];
  const url = `ws${server.tls ? 's' : ''}://${server.host}:${server.port}${path}`;
  const ws = new WebSocket(url, offer, {
    perMessageDeflate, handshakeTimeout: 5000, headers, origin, autoPong, localAddress, ca: server.tls?.ca,
  });
  const client = new Client(ws, enc, { track });
  return new Promise((res, rej) => {
    ws.once('upgrade', (response) => {
      client.handshakeHeaders = response.headers;
    });
    ws.once('open', () => res(client));
    ws.once('unexpected-response', (_req, response) => {
      client.close();
      rej(Object.assign(new Error(`handshake refused: HTTP ${response.statusCode}`), { statusCode: response.statusCode }));
    });
    ws.once('error', (e) => rej(e));
  });
}

/** Connects and says hello; returns {client, welcome}. */
export async function connectHello(server, enc, helloFields = {}) {
  const client = await connect(server, enc);
  const welcome = await client.hello(helloFields);
  return { client, welcome };
}

/**
 * Closes every client made since the last call and returns what went wrong on any of them in
 * passing: frames of the wrong kind or that did not decode, recs versions that went backwards.
 */
export function closeAllClients() {
  const problems = [];
  for (const c of createdClients.splice(0)) {
    c.close();
    for (const f of c.badFrames) problems.push({ enc: c.enc, badFrame: f });
    for (const v of c.versionViolations) problems.push({ enc: c.enc, versionOutOfOrder: v });
  }
  return problems;
}

/** Asserts the frames and versions a client saw were all in order. */
export function assertCleanClient(client) {
  assert.deepEqual(client.badFrames, [], `${client.enc}: frames that break the subprotocol`);
  assert.deepEqual(client.versionViolations, [], `${client.enc}: recs versions out of order`);
}

// ---------------------------------------------------------------------------------------------
// Shape assertions for server messages (PROTOCOL.md §2.2)

function assertOnlyFields(msg, allowed, what) {
  const extra = Object.keys(msg).filter((k) => !allowed.includes(k));
  assert.deepEqual(extra, [], `${what} has fields the page does not define: ${JSON.stringify(msg).slice(0, 500)}`);
}

export function assertWelcome(w, expectedUser) {
  assert.equal(w.type, 'welcome');
  assertOnlyFields(w, ['type', 'v', 'session', 'user', 'node', 'server_time_ms', 'limits'], 'welcome');
  assert.equal(w.v, 1);
  assert.equal(typeof w.session, 'string');
  assert.ok(w.session.length > 0, 'welcome.session is empty');
  assert.ok(isId(w.user), `welcome.user is not an id: ${JSON.stringify(w.user)}`);
  if (expectedUser !== undefined) assert.equal(w.user, expectedUser);
  else assert.match(w.user, /^anon-/, 'a server-assigned user starts with anon-');
  assert.equal(typeof w.node, 'string');
  assert.ok(isInt(w.server_time_ms), `welcome.server_time_ms is not an int: ${w.server_time_ms}`);
  assert.ok(Math.abs(w.server_time_ms - Date.now()) < 60_000, `welcome.server_time_ms ${w.server_time_ms} is not near now (${Date.now()})`);
  assert.equal(typeof w.limits, 'object');
  assert.deepEqual(Object.keys(w.limits).sort(), Object.keys(DEFAULT_LIMITS).sort(), 'welcome.limits fields');
  for (const [k, v] of Object.entries(w.limits)) assert.ok(isInt(v), `welcome.limits.${k} is not an int`);
}

export function assertPong(p, t) {
  assert.equal(p.type, 'pong');
  assertOnlyFields(p, ['type', 't', 'server_time_ms'], 'pong');
  assert.ok(isInt(p.server_time_ms), 'pong.server_time_ms is not an int');
  if (t === undefined) assert.equal('t' in p, false, 'pong carries t for a ping without t');
  else assert.equal(p.t, t);
}

export function assertAck(a, ids) {
  assert.equal(a.type, 'ack', `expected ack, got ${JSON.stringify(a)}`);
  assertOnlyFields(a, ['type', 'ids'], 'ack');
  assert.ok(Array.isArray(a.ids) && a.ids.every(isId), `ack.ids: ${JSON.stringify(a.ids)}`);
  if (ids !== undefined) assert.deepEqual([...a.ids].sort(), [...ids].sort());
}

export function assertError(err, code) {
  assert.equal(err.type, 'error', `expected error ${code}, got ${JSON.stringify(err)}`);
  assertOnlyFields(err, ['type', 'code', 'name', 'message', 'id', 'about', 'surface', 't', 'fatal'], 'error');
  assert.equal(err.code, code, `expected error ${code}, got ${JSON.stringify(err)}`);
  assert.equal(err.name, ERRORS[code].name, `error ${code} name`);
  assert.equal(typeof err.message, 'string');
  assert.equal(err.fatal, ERRORS[code].fatal, `error ${code} fatal`);
  if ('id' in err) assert.equal(typeof err.id, 'string');
  if ('about' in err) assert.ok(CLIENT_TYPES.includes(err.about), `error.about ${err.about}`);
  if ('surface' in err) assert.ok(['subscribe', 'unsubscribe'].includes(err.about), 'surface only about a subscription');
  if ('t' in err) {
    assert.equal(err.about, 'ping', 't only about a ping');
    assert.equal(typeof err.t, 'number');
  }
}

// The fields each reason code may carry beside `code` (PROTOCOL.md, `recs`).
const REASON_FIELDS = {
  co_visited: ['item', 'item_name'],
  similar: ['item', 'item_name', 'category', 'category_name'],
  category_affinity: ['category', 'category_name'],
  trending: [],
  trending_context: ['segment'],
  trending_locale: ['locale'],
  pinned: [],
  repeat: ['kind', 'age_s'],
  new_item: ['category', 'category_name'],
  popular: ['category', 'category_name'],
};
const CONTEXT_WORDS = {
  mobile: 'Trending on mobile', tablet: 'Trending on tablets', desktop: 'Trending on desktop',
  night: 'Trending tonight', morning: 'Trending this morning', afternoon: 'Trending this afternoon',
  evening: 'Trending this evening',
};
const REPEAT_WORDS = { cart: 'You added this to your cart', purchase: 'You bought this', rating: 'You rated this' };

/** The words the server must put in `why` for reason `r` (PROTOCOL.md, `recs`): built from the
 * reason alone, so a `why` that disagrees with its reason fails. */
export function reasonWords(r) {
  const cat = () => r.category_name ?? r.category;
  const itemName = () => r.item_name ?? r.item;
  const inCat = (what) => (r.category !== undefined ? `${what} in ${cat()}` : what);
  const ago = (s) => {
    if (s === undefined) return 'earlier';
    if (s < 60) return 'just now';
    if (s < 3600) return `${Math.floor(s / 60)} minute${s < 120 ? '' : 's'} ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} hour${s < 7200 ? '' : 's'} ago`;
    return 'earlier';
  };
  switch (r.code) {
    case 'co_visited': return `Viewed together with ${itemName()}`;
    case 'similar': return `Similar to ${itemName()}`;
    case 'category_affinity': return `Because you like ${cat()}`;
    case 'trending': return 'Trending now';
    case 'trending_context': return CONTEXT_WORDS[r.segment];
    case 'trending_locale': return 'Trending in your region';
    case 'pinned': return 'Featured';
    case 'repeat': return `${REPEAT_WORDS[r.kind] ?? 'You viewed this'} ${ago(r.age_s)}`;
    case 'new_item': return inCat('New');
    case 'popular': return inCat('Popular');
    default: return undefined;
  }
}

/** Asserts a recs item's structured reason: a known code, only the fields of that code, of
 * their types, and the `why` its words make. */
export function assertReason(it) {
  const r = it.reason;
  assert.ok(r !== null && typeof r === 'object', `recs item without a reason: ${JSON.stringify(it)}`);
  assert.ok(Object.hasOwn(REASON_FIELDS, r.code), `reason code: ${JSON.stringify(it)}`);
  assertOnlyFields(r, ['code', ...REASON_FIELDS[r.code]], `reason ${r.code}`);
  if ('item' in r) assert.ok(isId(r.item), `reason.item: ${JSON.stringify(r)}`);
  for (const k of ['item_name', 'category', 'category_name', 'segment', 'locale', 'kind'])
    if (k in r) assert.ok(typeof r[k] === 'string' && r[k].length > 0, `reason.${k}: ${JSON.stringify(r)}`);
  if ('age_s' in r) assert.ok(isInt(r.age_s) && r.age_s >= 0, `reason.age_s: ${JSON.stringify(r)}`);
  if (r.code === 'co_visited' || r.code === 'similar') assert.ok('item' in r, `${r.code} without item`);
  if (r.code === 'category_affinity' || r.code === 'similar') assert.ok('category' in r, `${r.code} without category`);
  if (r.code === 'trending_context') assert.ok(Object.hasOwn(CONTEXT_WORDS, r.segment), `segment: ${r.segment}`);
  if (r.code === 'trending_locale') assert.ok('locale' in r, 'trending_locale without locale');
  assert.equal(it.why, reasonWords(r), `why of ${JSON.stringify(it)}`);
}

/**
 * A client's side of compact lists (PROTOCOL.md, `recs_delta`), written from the page alone:
 * the details it keeps per connection, the list it holds per surface. apply() turns a
 * recs_delta into the whole list it stands for, shaped as a `recs` message, or throws when the
 * delta does not apply (a base the client does not hold, an item it has no details for).
 */
export class CompactLists {
  constructor() {
    this.details = new Map(); // item id -> {name?, category?, price?}
    this.reasons = new Map(); // reason number -> {src, why, reason}
    this.held = new Map(); // surface -> {version, items: [ids]}
  }

  /** Forgets the list of `surface` (the client re-subscribed: the next list comes whole). */
  forget(surface) {
    this.held.delete(surface);
  }

  apply(d) {
    assert.equal(d.type, 'recs_delta');
    assertOnlyFields(d, ['type', 'surface', 'version', 'base', 'remove', 'place', 'scores_e4', 'r', 'items', 'reasons', 'cause', 'took_us', 'variant'], 'recs_delta');
    assert.ok(isInt(d.version) && isInt(d.base) && d.base >= 0 && d.version > d.base, `versions of ${JSON.stringify(d).slice(0, 200)}`);
    const held = d.base === 0 ? [] : this.held.get(d.surface)?.version === d.base ? this.held.get(d.surface).items : null;
    if (held === null) throw new Error(`base ${d.base} of ${d.surface} is not held (${this.held.get(d.surface)?.version})`);
    const removed = new Set(d.remove ?? []);
    for (const id of removed) assert.ok(held.includes(id), `remove of ${id}, not held`);
    const place = d.place ?? [];
    const placed = new Set(place.map(([, id]) => id));
    const rest = held.filter((id) => !removed.has(id) && !placed.has(id));
    const at = new Map(place.map(([pos, id]) => [pos, id]));
    assert.equal(at.size, place.length, 'a position placed twice');
    const items = [];
    for (let p = 0; at.size > 0 || rest.length > 0; p++) {
      if (at.has(p)) {
        items.push(at.get(p));
        at.delete(p);
      } else {
        assert.ok(rest.length > 0, `position ${p} is neither placed nor kept`);
        items.push(rest.shift());
      }
    }
    assert.ok(Array.isArray(d.scores_e4) && d.scores_e4.length === items.length && d.scores_e4.every(isInt), `${d.scores_e4?.length} scores for ${items.length} items`);
    assert.equal(new Set(items).size, items.length, `an item twice: ${items}`);
    assert.ok(Array.isArray(d.r) && d.r.length === items.length && d.r.every(isInt), `r: ${JSON.stringify(d.r)}`);
    for (const [id, fields] of Object.entries(d.items ?? {})) {
      assertOnlyFields(fields, ['name', 'category', 'price'], `recs_delta item ${id}`);
      this.details.set(id, fields);
    }
    for (const [rid, def] of Object.entries(d.reasons ?? {})) {
      assert.match(rid, /^(0|[1-9][0-9]*)$/, `reason number ${rid}`);
      assertOnlyFields(def, ['src', 'why', 'reason'], `reason ${rid}`);
      this.reasons.set(Number(rid), def);
    }
    this.held.set(d.surface, { version: d.version, items });
    let sum = 0; // scores_e4: the first, then differences
    const list = {
      type: 'recs', surface: d.surface, version: d.version,
      items: items.map((id, i) => {
        const why = this.reasons.get(d.r[i]);
        assert.ok(why, `reason ${d.r[i]} of ${id} never defined`);
        sum += d.scores_e4[i];
        const it = { item: id, score: sum / 10000, src: why.src, why: why.why };
        if ('reason' in why) it.reason = why.reason;
        const det = this.details.get(id) ?? {};
        for (const k of ['name', 'category', 'price']) if (k in det) it[k] = det[k];
        return it;
      }),
      took_us: d.took_us, variant: d.variant ?? 'control',
    };
    if ('cause' in d) list.cause = d.cause;
    return list;
  }
}

/** The client message types of PROTOCOL.md section 2.1 (what error.about may name). */
const CLIENT_TYPES = ['hello', 'event', 'events', 'subscribe', 'unsubscribe', 'ping', 'auth'];

/**
 * Asserts the shape of a recs message; `surface`, `k` (exact length), and `cause` (an id, or
 * `null` for "must be absent") are checked when given.
 */
export function assertRecs(r, { surface, k, cause } = {}) {
  assert.equal(r.type, 'recs', `expected recs, got ${JSON.stringify(r).slice(0, 300)}`);
  assertOnlyFields(r, ['type', 'surface', 'version', 'items', 'cause', 'took_us', 'variant'], 'recs');
  assert.ok(typeof r.surface === 'string' && SURFACE_RE.test(r.surface), `recs.surface ${r.surface}`);
  if (surface !== undefined) assert.equal(r.surface, surface);
  assert.ok(isInt(r.version), `recs.version is not an int: ${r.version}`);
  assert.ok(isInt(r.took_us) && r.took_us >= 0, `recs.took_us is not an int ≥ 0: ${r.took_us}`);
  assert.ok(typeof r.variant === 'string' && r.variant.length > 0, `recs.variant: ${r.variant}`);
  assert.ok(Array.isArray(r.items), 'recs.items is not an array');
  if (k !== undefined) assert.equal(r.items.length, k, `recs.items has ${r.items.length} items, expected k=${k}`);
  for (const it of r.items) {
    assertOnlyFields(it, ['item', 'score', 'src', 'why', 'reason', 'name', 'category', 'price'], 'recs item');
    assertReason(it);
    assert.ok(isId(it.item), `recs item id: ${JSON.stringify(it)}`);
    assert.ok(typeof it.score === 'number' && Number.isFinite(it.score), `recs item score: ${JSON.stringify(it)}`);
    assert.ok(SOURCES.has(it.src), `recs item src: ${JSON.stringify(it)}`);
    assert.ok(typeof it.why === 'string' && it.why.length > 0, `recs item why: ${JSON.stringify(it)}`);
    if ('name' in it) assert.equal(typeof it.name, 'string');
    if ('category' in it) assert.equal(typeof it.category, 'string');
    if ('price' in it) assert.equal(typeof it.price, 'number');
  }
  const ids = r.items.map((it) => it.item);
  assert.equal(new Set(ids).size, ids.length, `recs lists an item twice: ${ids.join(',')}`);
  if (cause === null) assert.equal('cause' in r, false, 'recs sent on subscribe carries a cause');
  else if (cause !== undefined) assert.equal(r.cause, cause);
  if ('cause' in r) assert.ok(isId(r.cause), `recs.cause is not an id: ${r.cause}`);
}

// SPDX-License-Identifier: Apache-2.0
// A small stand-in for rankcast, built on `ws`, for the cases the real server cannot be made to
// produce on demand: drops in the middle of a batch, duplicate acks, retryable errors, a slow
// server, drain, a server that never answers. By default it behaves like rankcast (welcome,
// ack, recs on subscribe, pong); a test overrides any message with `server.handle`.

import { decode, encode } from '@msgpack/msgpack';
import { WebSocketServer } from 'ws';

export const SUBPROTOCOL = { msgpack: 'rankcast.v1.msgpack', json: 'rankcast.v1.json' };

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` until it returns something truthy; rejects with `what` after `timeoutMs`. */
export async function waitUntil(fn, { timeoutMs = 3000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** One client connection as the fake server sees it. */
export class FakeConnection {
  constructor(server, ws, index) {
    this.server = server;
    this.ws = ws;
    this.index = index;
    this.encoding = ws.protocol === SUBPROTOCOL.msgpack ? 'msgpack' : 'json';
    this.received = [];
    this.hello = null;
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    ws.on('error', () => {});
  }

  onFrame(data, isBinary) {
    const msg = isBinary ? decode(data) : JSON.parse(data.toString('utf8'));
    if (isBinary !== (this.encoding === 'msgpack')) this.server.frameKindErrors++;
    this.received.push(msg);
    this.server.log.push({ conn: this, msg, at: performance.now() });
    if (msg.type === 'hello') this.hello = msg;
    const handled = this.server.handle?.(this, msg);
    if (handled !== true) this.server.defaultHandle(this, msg);
    this.server.notify();
  }

  send(msg) {
    if (this.ws.readyState !== 1) return;
    if (this.encoding === 'msgpack') this.ws.send(encode(msg), { binary: true });
    else this.ws.send(JSON.stringify(msg), { binary: false });
  }

  close(code = 1000, reason = '') {
    this.ws.close(code, reason);
  }

  /** Drops the TCP connection without a close handshake (code 1006 at the client). */
  terminate() {
    this.ws.terminate();
  }
}

export class FakeServer {
  /** @param {{limits?: object, autoAck?: boolean, port?: number}} [options] */
  static async start(options = {}) {
    const server = new FakeServer(options);
    await new Promise((resolve) => server.wss.once('listening', resolve));
    server.port = server.wss.address().port;
    server.url = `ws://127.0.0.1:${server.port}/ws`;
    return server;
  }

  constructor({ limits = {}, autoAck = true, port = 0 } = {}) {
    this.limits = { max_message_bytes: 65536, max_batch: 100, max_subscriptions: 16, max_k: 100, events_per_sec: 200, events_burst: 400, ...limits };
    this.autoAck = autoAck;
    this.handle = null;
    this.log = [];
    this.connections = [];
    this.version = 1000;
    this.frameKindErrors = 0;
    this.waiters = new Set();
    this.wss = new WebSocketServer({
      host: '127.0.0.1',
      port,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL.msgpack) ? SUBPROTOCOL.msgpack : SUBPROTOCOL.json),
    });
    this.wss.on('connection', (ws) => {
      this.connections.push(new FakeConnection(this, ws, this.connections.length));
      this.notify();
    });
  }

  get live() {
    return this.connections.filter((c) => c.ws.readyState === 1);
  }

  get last() {
    return this.connections[this.connections.length - 1];
  }

  /** What rankcast would answer. */
  defaultHandle(conn, msg) {
    switch (msg.type) {
      case 'hello':
        conn.send({ type: 'welcome', v: 1, session: `s-${conn.index}`, user: msg.user ?? `anon-${conn.index}`, node: 'fake', server_time_ms: Date.now(), limits: this.limits });
        break;
      case 'event':
        if (this.autoAck) conn.send({ type: 'ack', ids: [msg.id] });
        break;
      case 'events':
        if (this.autoAck) conn.send({ type: 'ack', ids: msg.events.map((e) => e.id) });
        break;
      case 'subscribe':
        conn.send(this.recs(msg.surface));
        break;
      case 'ping':
        conn.send(msg.t === undefined ? { type: 'pong', server_time_ms: Date.now() } : { type: 'pong', t: msg.t, server_time_ms: Date.now() });
        break;
      default:
        break;
    }
  }

  /** A recs message with the next version (or `version`), one item per id in `items`. */
  recs(surface, { version, cause, items = ['i-1', 'i-2', 'i-3'] } = {}) {
    const msg = {
      type: 'recs',
      surface,
      version: version ?? ++this.version,
      items: items.map((item, i) => ({ item, score: 1 - i / 10, src: 'popular', why: 'Popular now' })),
      took_us: 5,
      variant: 'control',
    };
    if (cause !== undefined) msg.cause = cause;
    return msg;
  }

  /** Every message of `type` received so far (optionally only on `conn`). */
  received(type, conn) {
    return this.log.filter((e) => e.msg.type === type && (!conn || e.conn === conn)).map((e) => e.msg);
  }

  /** Ids of every event received, in order, whether sent alone or in a batch. */
  eventIds() {
    const ids = [];
    for (const { msg } of this.log) {
      if (msg.type === 'event') ids.push(msg.id);
      else if (msg.type === 'events') ids.push(...msg.events.map((e) => e.id));
    }
    return ids;
  }

  notify() {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves with the first log entry from index `from` on that matches `pred`. */
  waitFor(pred, { from = 0, timeoutMs = 3000 } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = from; i < this.log.length; i++) {
          if (pred(this.log[i].msg, this.log[i].conn)) {
            cleanup();
            resolve(this.log[i]);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`fake server: timed out after ${timeoutMs} ms; received ${JSON.stringify(this.log.slice(-10).map((e) => e.msg)).slice(0, 2000)}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves once `n` connections have been accepted in total. */
  waitForConnections(n, timeoutMs = 3000) {
    return waitUntil(() => this.connections.length >= n, { timeoutMs, what: `${n} connections (have ${this.connections.length})` });
  }

  async stop() {
    for (const c of this.connections) c.ws.terminate();
    await new Promise((resolve) => this.wss.close(resolve));
  }
}

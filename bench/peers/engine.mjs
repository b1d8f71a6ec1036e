// SPDX-License-Identifier: Apache-2.0
// The reference peers' shared "job": the same work rankcast does for one event, kept simple
// and written the way a Node team would write it. Users hold a short list of recent items;
// an event updates item co-visitation counts, re-ranks every subscribed surface of the user
// (co-visitation neighbours of the recent items, then popular items to fill), and the new
// list is pushed only when it changed, like rankcast. Nothing here talks to a socket.
import { readFileSync } from 'node:fs';

const KIND_WEIGHT = { view: 1, click: 2, cart: 4, purchase: 8, rating: 2, dwell: 1, search: 0, impression: 0, dismiss: 0 };
const RECENT_MAX = 10;
const COVISIT_NEIGHBORS = 32;
const POPULAR_KEEP = 200;
const CATEGORY_KEEP = 30;
const CONTENT_WEIGHT = 0.5;

export const LIMITS = {
  max_message_bytes: 65536, max_batch: 100, max_subscriptions: 16, max_k: 100,
  events_per_sec: 200, events_burst: 400,
};

export class Engine {
  constructor(catalogPath) {
    this.items = []; // {id, name, category, price, popularity}
    this.index = new Map(); // id -> position in items
    if (catalogPath) {
      for (const line of readFileSync(catalogPath, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        const it = JSON.parse(line);
        this.addItem(String(it.id), it);
      }
    }
    this.popular = this.items
      .map((it, i) => [it.popularity || 0, i])
      .sort((a, b) => b[0] - a[0])
      .slice(0, POPULAR_KEEP)
      .map((x) => x[1]);
    // Content similarity, simply: the most popular items of each category.
    this.byCategory = new Map();
    this.items.map((it, i) => [it.popularity || 0, i]).sort((a, b) => b[0] - a[0]).forEach(([, i]) => {
      const cat = this.items[i].category;
      if (cat === undefined) return;
      let list = this.byCategory.get(cat);
      if (!list) this.byCategory.set(cat, (list = []));
      if (list.length < CATEGORY_KEEP) list.push(i);
    });
    this.covisit = new Map(); // item index -> Map(neighbour index -> weight)
    this.users = new Map(); // user id -> session
    this.versionBase = Date.now() * 1000;
  }

  addItem(id, it = {}) {
    const idx = this.items.length;
    this.items.push({ id, name: it.name, category: it.category, price: it.price, popularity: it.popularity || 0 });
    this.index.set(id, idx);
    return idx;
  }

  itemIndex(id) {
    const idx = this.index.get(id);
    return idx === undefined ? this.addItem(id) : idx; // an open catalog, like rankcast's default
  }

  session(user) {
    let s = this.users.get(user);
    if (!s) {
      s = { user, recent: [], version: 0, conns: new Set() };
      this.users.set(user, s);
    }
    return s;
  }

  bump(a, b, w) {
    let m = this.covisit.get(a);
    if (!m) this.covisit.set(a, (m = new Map()));
    const old = m.get(b);
    if (old !== undefined) {
      m.set(b, old + w);
      return;
    }
    if (m.size >= COVISIT_NEIGHBORS) {
      // Evict the weakest neighbour: bounded memory per item, as rankcast's --covisit-neighbors.
      let minKey = -1;
      let minW = Infinity;
      for (const [k, v] of m) if (v < minW) { minW = v; minKey = k; }
      if (minW > w) return;
      m.delete(minKey);
    }
    m.set(b, w);
  }

  /** Applies one event to the user's session and the global model. */
  applyEvent(s, ev) {
    if (typeof ev.item !== 'string') return;
    const idx = this.itemIndex(ev.item);
    const w = KIND_WEIGHT[ev.kind] ?? 1;
    if (w > 0) for (const r of s.recent) if (r.idx !== idx) { this.bump(r.idx, idx, w); this.bump(idx, r.idx, w); }
    s.recent = s.recent.filter((r) => r.idx !== idx);
    s.recent.unshift({ idx, w: Math.max(w, 1) });
    if (s.recent.length > RECENT_MAX) s.recent.length = RECENT_MAX;
  }

  /**
   * The top-k list for a session: co-visitation neighbours of the recent items, popular items
   * of their categories (content), then popular items to fill.
   */
  rank(s, k) {
    const scores = new Map();
    const because = new Map();
    const seen = new Set(s.recent.map((r) => r.idx));
    s.recent.forEach((r, pos) => {
      const decay = r.w / (1 + pos);
      const m = this.covisit.get(r.idx);
      if (m) {
        for (const [c, cw] of m) {
          if (seen.has(c)) continue;
          scores.set(c, (scores.get(c) || 0) + cw * decay);
          if (!because.has(c)) because.set(c, [r.idx, 'covisit']);
        }
      }
      const similar = this.byCategory.get(this.items[r.idx].category);
      if (similar) {
        for (const c of similar) {
          if (seen.has(c)) continue;
          scores.set(c, (scores.get(c) || 0) + CONTENT_WEIGHT * decay);
          if (!because.has(c)) because.set(c, [r.idx, 'content']);
        }
      }
    });
    const ranked = [...scores].sort((a, b) => b[1] - a[1]).slice(0, k);
    const out = ranked.map(([c, score]) => {
      const [src, kind] = because.get(c);
      const name = this.items[src].name || this.items[src].id;
      return this.entry(c, score, kind, kind === 'covisit' ? `Viewed together with ${name}` : `Like ${name}`);
    });
    for (let i = 0; out.length < k && i < this.popular.length; i++) {
      const c = this.popular[i];
      if (seen.has(c) || scores.has(c)) continue;
      out.push(this.entry(c, 0, 'popular', 'Popular right now'));
    }
    return out;
  }

  entry(c, score, src, why) {
    const it = this.items[c];
    const e = { item: it.id, score: Math.round(score * 1000) / 1000, src, why };
    if (it.name !== undefined) { e.name = it.name; e.category = it.category; e.price = it.price; }
    return e;
  }

  /**
   * Re-ranks every surface any connection of the user holds and returns the messages to send:
   * [{surface, msg}]. `cause` is the event id (absent on subscribe). Every event pushes its
   * lists: rankcast pushes only changed lists, but its scores move with nearly every event
   * (it pushed for 99.9 % of the events in the benchmarks), so always pushing gives the peer
   * the same work per event.
   */
  lists(s, started, cause, onlySurface, conn) {
    const out = [];
    const surfaces = new Map();
    const conns = conn ? [conn] : s.conns;
    for (const c of conns) for (const [surface, k] of c.surfaces) if (!onlySurface || surface === onlySurface) surfaces.set(surface, k);
    for (const [surface, k] of surfaces) {
      const items = this.rank(s, k);
      const msg = { type: 'recs', surface, version: this.versionBase + ++s.version, items };
      if (cause) msg.cause = cause;
      msg.took_us = Math.round(Number(process.hrtime.bigint() - started) / 1000);
      msg.variant = 'control';
      out.push({ surface, msg });
    }
    return out;
  }
}

/** Reads `--name value` flags with defaults. */
export function parseArgs(argv, defaults) {
  const o = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const name = a.slice(2);
    if (!(name in defaults)) throw new Error(`unknown option ${a}`);
    o[name] = argv[++i];
  }
  return o;
}

/** Reads a JSON body of at most 64 KiB; resolves to the parsed value or rejects. */
export function readJsonBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 65536) { reject(new Error('too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => {
      try { resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))); } catch (e) { reject(e); }
    });
    req.on('error', reject);
  });
}

let pushSeq = 0;
/**
 * The push API's route, shared by both peers: POST /api/v1/push {user|segment, topic, data}
 * with `Authorization: Bearer TOKEN`. `deliver(target, message)` sends it; answers 202.
 */
export async function handlePushRequest(req, res, token, deliver) {
  const reply = (code, obj) => { res.writeHead(code, { 'content-type': 'application/json' }); res.end(JSON.stringify(obj)); };
  if (req.url === '/healthz') return reply(200, { status: 'ok' });
  if (req.url !== '/api/v1/push') return reply(404, { error: 'not found' });
  if (req.method !== 'POST') return reply(405, { error: 'method' });
  if (!token || req.headers.authorization !== `Bearer ${token}`) return reply(401, { error: 'unauthorized' });
  let body;
  try { body = await readJsonBody(req); } catch { return reply(400, { error: 'bad body' }); }
  if (!body || typeof body !== 'object' || body.data === undefined || (!body.user && !body.segment)) return reply(400, { error: 'bad body' });
  const id = `p-${process.pid}-${++pushSeq}`;
  const msg = { type: 'push', id, topic: body.topic || 'message', data: body.data };
  const delivered = deliver(body.user ? { user: String(body.user) } : { segment: String(body.segment) }, msg);
  return reply(202, { id, delivered });
}

export function welcome(user, node, sessionId) {
  return { type: 'welcome', v: 1, session: sessionId, user, node, server_time_ms: Date.now(), limits: LIMITS };
}

/**
 * The rankcast JSON subprotocol for one connection, transport-free: `send(obj)` writes one
 * message, `sendEncoded(text)` a pre-encoded one (shared by every connection of a user).
 * Returns the handler of one incoming message object.
 */
export function protocolHandler(engine, conn, node, broadcastToUser) {
  return (m) => {
    if (!m || typeof m !== 'object') return conn.send({ type: 'error', code: 4000, name: 'malformed', message: 'not a map' });
    switch (m.type) {
      case 'hello': {
        if (conn.session) return conn.send({ type: 'error', code: 4005, name: 'hello_repeated', message: 'second hello' });
        const user = typeof m.user === 'string' ? m.user : `anon-${process.pid}-${Math.random().toString(36).slice(2)}`;
        conn.device = m.device || 'other';
        conn.session = engine.session(user);
        conn.session.conns.add(conn);
        return conn.send(welcome(user, node, `s-${process.pid}-${conn.id}`));
      }
      case 'ping':
        return conn.send(m.t === undefined ? { type: 'pong', server_time_ms: Date.now() } : { type: 'pong', t: m.t, server_time_ms: Date.now() });
      default:
        break;
    }
    if (!conn.session) return conn.send({ type: 'error', code: 4004, name: 'hello_required', message: 'hello first' });
    const started = process.hrtime.bigint();
    switch (m.type) {
      case 'subscribe': {
        const k = Math.min(Math.max(Number(m.k) || 10, 1), 100);
        conn.surfaces.set(String(m.surface), k);
        for (const { msg } of engine.lists(conn.session, started, undefined, String(m.surface), conn)) conn.send(msg);
        return undefined;
      }
      case 'unsubscribe':
        conn.surfaces.delete(String(m.surface));
        return undefined;
      case 'event':
      case 'events': {
        const evs = m.type === 'event' ? [m] : Array.isArray(m.events) ? m.events : [];
        for (const ev of evs) engine.applyEvent(conn.session, ev);
        conn.send({ type: 'ack', ids: evs.map((e) => e.id) });
        const cause = evs.length ? evs[evs.length - 1].id : undefined;
        for (const { surface, msg } of engine.lists(conn.session, started, cause)) broadcastToUser(conn.session, surface, msg);
        return undefined;
      }
      default:
        return conn.send({ type: 'error', code: 4001, name: 'unknown_type', message: 'unknown type' });
    }
  };
}

// SPDX-License-Identifier: Apache-2.0
// The data side of bench/eval/live-replay.mjs: rankcast-eval's input formats, split, test
// sampling and scoring rules (bench/eval/data.c, eval.c) and its POP baseline (knn.c), rule for
// rule, so both tools see the same sessions in the same order and score them alike (the POP
// figures of the two agree to the last digit).

import { readFileSync } from 'node:fs';

export const K = 20;
export const KINDS = ['view', 'click', 'cart', 'purchase', 'rating', 'dwell', 'search', 'impression', 'dismiss'];

/**
 * Item ids as the engine's catalog indexes them: the catalog file's ids in file order (a
 * repeated id keeps its first index); without a catalog, items are learned in the order the
 * loader resolves them.
 */
export class Items {
  constructor(catalogPath) {
    this.index = new Map();
    this.ids = [];
    this.open = !catalogPath;
    this.droppedUnknown = 0;
    if (catalogPath) {
      for (const line of readFileSync(catalogPath, 'utf8').split('\n')) {
        if (line.trim() === '') continue;
        const id = JSON.parse(line).id;
        if (typeof id === 'string' && !this.index.has(id)) {
          this.index.set(id, this.ids.length);
          this.ids.push(id);
        }
      }
    }
  }

  /** The item's index, or -1 (counted) for an id a closed catalog does not know. */
  resolve(id) {
    let idx = this.index.get(id);
    if (idx !== undefined) return idx;
    if (!this.open) {
      this.droppedUnknown += 1;
      return -1;
    }
    idx = this.ids.length;
    this.index.set(id, idx);
    this.ids.push(id);
    return idx;
  }
}

function readLines(path) {
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

class Dataset {
  constructor(items) {
    this.items = items;
    this.sessions = [];
  }

  /** Keeps a session of two events or more (nothing to predict in a shorter one). */
  close(events, test) {
    if (events.length < 2) return;
    this.sessions.push({ test, t0: events[0].ts, t1: events[events.length - 1].ts, events, order: this.sessions.length });
  }

  /** Sessions by first event; train before test at equal times; then load order. */
  sort() {
    this.sessions.sort((a, b) => a.t0 - b.t0 || Number(a.test) - Number(b.test) || a.order - b.order);
  }
}

/** Whether repeated events are kept (--targets all, session-rec's protocol); set by loadDataset. */
let keepRepeats = false;

/** Appends unless it repeats the previous event (same item, same kind), as data.c push_item;
 * under --targets all every event is kept. */
function pushItem(events, item, kind, ts) {
  const last = events[events.length - 1];
  if (!keepRepeats && last && last.item === item && last.kind === kind) return;
  events.push({ item, kind, ts });
}

function loadPrepared(d, path, kind) {
  for (const line of readLines(path)) {
    const tab1 = line.indexOf('\t');
    const tab2 = tab1 < 0 ? -1 : line.indexOf('\t', tab1 + 1);
    if (tab2 < 0) continue;
    const ts = Number.parseInt(line.slice(tab1 + 1, tab2), 10);
    const events = [];
    for (const id of line.slice(tab2 + 1).split(/[ \r]/)) {
      if (id === '') continue;
      const idx = d.items.resolve(id);
      if (idx >= 0) pushItem(events, idx, kind, ts);
    }
    d.close(events, line.startsWith('test'));
  }
}

function loadSessionRec(d, path, test, kind) {
  const lines = readLines(path);
  const names = (lines[0] ?? '').split(/[\t\r\n]+/).filter((s) => s !== '');
  const cs = names.indexOf('SessionId');
  const ci = names.indexOf('ItemId');
  const ct = names.indexOf('Time');
  if (cs < 0 || ci < 0 || ct < 0) throw new Error(`${path}: the header must name SessionId, ItemId, Time`);
  const keys = new Map();
  const rows = [];
  for (let no = 1; no < lines.length; no++) {
    const fields = lines[no].split('\t', 32);
    if (fields.length <= Math.max(cs, ci, ct)) continue;
    fields[fields.length - 1] = fields[fields.length - 1].replace(/[\r\n].*$/, '');
    const idx = d.items.resolve(fields[ci]);
    if (idx < 0) continue;
    let key = keys.get(fields[cs]);
    if (key === undefined) {
      key = keys.size;
      keys.set(fields[cs], key);
    }
    rows.push({ key, ts: Math.trunc((Number.parseFloat(fields[ct]) || 0) * 1000), no: rows.length, item: idx });
  }
  rows.sort((a, b) => a.key - b.key || a.ts - b.ts || a.no - b.no);
  for (let i = 0; i < rows.length; ) {
    const events = [];
    const key = rows[i].key;
    for (; i < rows.length && rows[i].key === key; i++) pushItem(events, rows[i].item, kind, rows[i].ts);
    d.close(events, test);
  }
}

function loadEvents(d, path, testFraction, sessionGapMs) {
  const users = new Map();
  const subs = new Map();
  const intern = (map, s) => {
    let v = map.get(s);
    if (v === undefined) {
      v = map.size;
      map.set(s, v);
    }
    return v;
  };
  const rows = [];
  let tMin = Infinity;
  let tMax = -Infinity;
  for (const line of readLines(path)) {
    let j;
    try {
      j = JSON.parse(line);
    } catch {
      continue;
    }
    if (j === null || typeof j !== 'object') continue;
    const { user, item, kind, ts_ms: ts, value, session } = j;
    if (typeof user !== 'string' || typeof item !== 'string' || typeof kind !== 'string' || typeof ts !== 'number' || !KINDS.includes(kind)) continue;
    const idx = d.items.resolve(item);
    if (idx < 0) continue;
    const t = Math.trunc(ts);
    const ev = { item: idx, kind, ts: t };
    if (typeof value === 'number') ev.value = value;
    rows.push({ key: intern(users, user), sub: typeof session === 'string' ? intern(subs, session) + 1 : 0, ts: t, no: rows.length, ev });
    tMin = Math.min(tMin, t);
    tMax = Math.max(tMax, t);
  }
  rows.sort((a, b) => a.key - b.key || a.ts - b.ts || a.no - b.no);
  // Test: sessions starting in the last `testFraction` of the time span.
  const cut = tMax - Math.trunc((tMax - tMin) * testFraction);
  for (let i = 0; i < rows.length; ) {
    const first = i;
    const events = [rows[i++].ev];
    while (
      i < rows.length &&
      rows[i].key === rows[first].key &&
      (rows[i].sub !== 0 ? rows[i].sub === rows[i - 1].sub : rows[i].ts - rows[i - 1].ts <= sessionGapMs)
    ) {
      events.push(rows[i++].ev);
    }
    d.close(events, rows[first].ts >= cut);
  }
}

export function loadDataset(o) {
  const items = new Items(o.catalog);
  const d = new Dataset(items);
  keepRepeats = o.targets === 'all';
  d.targetsAll = keepRepeats;
  if (o.prepared) loadPrepared(d, o.prepared, o.kind);
  else if (o.events) loadEvents(d, o.events, o.testFraction, o.sessionGapMs);
  else {
    loadSessionRec(d, o.train, false, o.kind);
    loadSessionRec(d, o.test, true, o.kind);
  }
  d.sort();
  return d;
}

/** rc_event_weight() of src/engine/engine.c. */
export function eventWeight(kind, value) {
  switch (kind) {
    case 'view':
      return 1;
    case 'click':
      return 2;
    case 'cart':
      return 4;
    case 'purchase':
      return 6;
    case 'rating':
      return value !== undefined ? (value - 3) * 1.5 : 0;
    case 'dwell':
      return value !== undefined ? Math.min(value / 10000, 3) : 0;
    case 'search':
      return 2;
    default:
      return 0;
  }
}

/** rankcast-eval's deterministic choice of test sessions (eval.c sampled()). */
export function sampled(i, fraction) {
  if (fraction >= 1) return true;
  let h = Math.imul(i, 2654435761) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return h / 4294967296 < fraction;
}

/**
 * What is scored in a session, as eval.c replay_session() decides it: after event t, the next
 * event's item when it is a positive event on another item, once the session holds a positive
 * event. `cur` (positive items, consecutive repeats merged) is what the baselines see; a
 * target already in it cannot be hit by any method.
 */
export function planSession(s, all = false) {
  const cur = [];
  const scored = new Map(); // t -> {target, repeat}
  for (let t = 0; t < s.events.length; t++) {
    const ev = s.events[t];
    if (eventWeight(ev.kind, ev.value) > 0 && (cur.length === 0 || cur[cur.length - 1] !== ev.item)) cur.push(ev.item);
    if (!s.predict || t + 1 >= s.events.length || cur.length === 0) continue;
    const next = s.events[t + 1];
    if ((!all && next.item === ev.item) || eventWeight(next.kind, next.value) <= 0) continue;
    scored.set(t, { target: next.item, repeat: cur.includes(next.item), cur: cur.slice() });
  }
  return { scored, cur };
}

// ---------------------------------------------------------------------------------------------
// Scoring

export class Metrics {
  constructor(nItems) {
    this.n = 0;
    this.hit10 = 0;
    this.hit20 = 0;
    this.rr = 0;
    this.ndcg = 0;
    this.shown = new Uint8Array(Math.max(1, nItems));
    this.nItems = nItems;
  }

  /** `list`: item indexes, best first (null when no list came: a miss). */
  score(list, target) {
    this.n += 1;
    if (!list) return;
    list.forEach((item, i) => {
      if (item >= 0) this.shown[item] = 1;
      if (item !== target) return;
      if (i < 10) this.hit10 += 1;
      if (i < 20) this.hit20 += 1;
      this.rr += 1 / (i + 1);
      this.ndcg += 1 / Math.log2(i + 2);
    });
  }

  summary() {
    const n = this.n || 1;
    let shown = 0;
    for (let i = 0; i < this.nItems; i++) shown += this.shown[i];
    return {
      predictions: this.n,
      hr10: this.hit10 / n,
      hr20: this.hit20 / n,
      mrr20: this.rr / n,
      ndcg20: this.ndcg / n,
      coverage20: this.nItems ? shown / this.nItems : 0,
    };
  }
}

/**
 * POP of bench/eval/knn.c: items by the number of completed sessions holding them, with the
 * same tie order (order[] kept sorted by swapping an item to the front of its count's block).
 */
export class Popularity {
  constructor(nItems) {
    this.count = new Uint32Array(nItems);
    this.order = new Uint32Array(nItems);
    this.pos = new Uint32Array(nItems);
    for (let i = 0; i < nItems; i++) this.order[i] = this.pos[i] = i;
    this.blockStart = [0];
    this.blockLen = [nItems];
  }

  increment(item) {
    const c = this.count[item];
    if (this.blockStart.length < c + 2) {
      this.blockStart.push(0);
      this.blockLen.push(0);
    }
    const s = this.blockStart[c];
    const p = this.pos[item];
    const other = this.order[s];
    this.order[s] = item;
    this.pos[item] = s;
    this.order[p] = other;
    this.pos[other] = p;
    this.blockStart[c] += 1;
    this.blockLen[c] -= 1;
    if (this.blockLen[c + 1] === 0) this.blockStart[c + 1] = s;
    this.blockLen[c + 1] += 1;
    this.count[item] = c + 1;
  }

  addSession(items) {
    for (const it of new Set(items)) this.increment(it);
  }

  rank(cur) {
    const skip = new Set(cur);
    const out = [];
    for (let i = 0; i < this.order.length && out.length < K; i++) {
      const it = this.order[i];
      if (!skip.has(it) && this.count[it] > 0) out.push(it);
    }
    return out;
  }
}

/** Plans every session and scores POP in strict time order, as rankcast-eval runs it. */
export function planAndScorePop(d, testSample) {
  const pop = new Popularity(d.items.ids.length);
  const popMetrics = new Metrics(d.items.ids.length);
  let predictions = 0;
  let repeatTargets = 0;
  d.sessions.forEach((s, i) => {
    s.index = i;
    s.predict = s.test && sampled(i, testSample);
    const plan = planSession(s, d.targetsAll);
    s.scored = plan.scored;
    for (const p of plan.scored.values()) {
      predictions += 1;
      if (p.repeat) repeatTargets += 1;
      popMetrics.score(pop.rank(p.cur), p.target);
      delete p.cur;
    }
    if (plan.cur.length > 0) pop.addSession(plan.cur);
  });
  return { popMetrics, predictions, repeatTargets };
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.round(q * (sorted.length - 1))];
}

export function distribution(values) {
  const v = Float64Array.from(values).sort();
  const mean = v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  return { n: v.length, p50: quantile(v, 0.5), p90: quantile(v, 0.9), p99: quantile(v, 0.99), p999: quantile(v, 0.999), max: v.length ? v[v.length - 1] : null, mean };
}

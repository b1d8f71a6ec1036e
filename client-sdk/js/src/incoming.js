// SPDX-License-Identifier: Apache-2.0
// Server → client messages of PROTOCOL.md §2.2, read into the SDK's camelCase shapes. Reading
// is lenient where that is safe (an unknown field or message type is ignored, so a newer
// server can add fields) and strict where the client relies on a value (a recs without an
// integer version, an ack without ids): those throw ClientError('protocol').

import { ClientError } from './errors.js';

/** The limits of PROTOCOL.md §6, used until (and where) welcome.limits says otherwise. */
export const DEFAULT_LIMITS = Object.freeze({
  maxMessageBytes: 65536,
  maxBatch: 100,
  maxSubscriptions: 16,
  maxK: 100,
  eventsPerSec: 200,
  eventsBurst: 400,
});

/**
 * The server's messages as the client reads them: camelCase, `type` as on the wire. index.d.ts
 * declares the same shapes for the application (test-support/types/published-vs-source.ts
 * checks that they stay the same).
 * @typedef {{-readonly [K in keyof typeof DEFAULT_LIMITS]: number}} Limits
 * @typedef {{v: number, session: string, user: string, node: string, serverTimeMs: number, limits: Limits}} WelcomeInfo
 * @typedef {{code: string, item?: string, itemName?: string, category?: string, categoryName?: string,
 *   segment?: string, locale?: string, kind?: string, ageS?: number}} Reason
 * @typedef {{item: string, score: number, src: string, why: string, reason?: Reason, name?: string,
 *   category?: string, price?: number}} RecItem
 * @typedef {{surface: string, version: number, items: RecItem[], cause?: string, tookUs: number,
 *   variant: string}} RecsList
 * @typedef {{src: string, why: string, reason?: Reason}} ReasonDef
 * @typedef {{name?: string, category?: string, price?: number}} ItemDetails
 * @typedef {{surface: string, version: number, base: number, remove: string[], place: Array<[number, string]>,
 *   scores: number[], r: number[], items: Map<string, ItemDetails>, reasons: Map<number, ReasonDef>, cause?: string,
 *   tookUs: number, variant: string}} RecsDelta
 * @typedef {{id: string, topic: string, data: unknown}} PushMessage
 * @typedef {{reason: string, reconnectAfterMs: number}} DrainInfo
 * @typedef {{expMs: number}} AuthInfo
 * @typedef {{serverTimeMs: number, t?: number}} Pong
 * @typedef {{code: number, name: string, message: string, fatal: boolean, id?: string, about?: string, surface?: string, t?: number}} ErrorMessage
 * @typedef {{type: 'welcome'} & WelcomeInfo | {type: 'ack', ids: string[]} | {type: 'recs'} & RecsList
 *   | {type: 'push'} & PushMessage | {type: 'pong'} & Pong | {type: 'error'} & ErrorMessage
 *   | {type: 'drain'} & DrainInfo | {type: 'auth_ok'} & AuthInfo | {type: 'recs_delta'} & RecsDelta} ServerMessage
 * @typedef {import('./codec.js').WireMessage} WireMessage
 */

/** @type {ReadonlyArray<readonly [string, keyof Limits]>} */
const LIMIT_FIELDS = [
  ['max_message_bytes', 'maxMessageBytes'],
  ['max_batch', 'maxBatch'],
  ['max_subscriptions', 'maxSubscriptions'],
  ['max_k', 'maxK'],
  ['events_per_sec', 'eventsPerSec'],
  ['events_burst', 'eventsBurst'],
];

/** @param {string} what */
const bad = (what) => new ClientError('protocol', `server message: ${what}`);

/**
 * @param {unknown} v
 * @returns {v is number}
 */
const isInteger = (v) => typeof v === 'number' && Number.isInteger(v);

/**
 * @param {WireMessage} msg
 * @param {string} field
 * @param {string} type
 */
function str(msg, field, type) {
  const v = msg[field];
  if (typeof v !== 'string') throw bad(`${type}.${field} is not a string`);
  return v;
}

/**
 * @param {WireMessage} msg
 * @param {string} field
 * @param {string} type
 */
function int(msg, field, type) {
  const v = msg[field];
  if (!isInteger(v)) throw bad(`${type}.${field} is not an integer`);
  return v;
}

/**
 * @param {WireMessage} msg
 * @param {string} field
 * @param {string} type
 */
function num(msg, field, type) {
  const v = msg[field];
  if (typeof v !== 'number') throw bad(`${type}.${field} is not a number`);
  return v;
}

/**
 * @param {unknown} wire
 * @returns {Limits}
 */
function readLimits(wire) {
  /** @type {Limits} */
  const limits = { ...DEFAULT_LIMITS };
  if (wire !== null && typeof wire === 'object') {
    const fields = /** @type {Record<string, unknown>} */ (wire);
    for (const [from, to] of LIMIT_FIELDS) {
      // A limit that is missing or nonsensical keeps its default rather than stalling delivery.
      const v = fields[from];
      if (isInteger(v) && v > 0) limits[to] = v;
    }
  }
  return limits;
}

/**
 * @param {WireMessage} m
 * @returns {ServerMessage}
 */
function readWelcome(m) {
  return {
    type: 'welcome',
    v: int(m, 'v', 'welcome'),
    session: str(m, 'session', 'welcome'),
    user: str(m, 'user', 'welcome'),
    node: str(m, 'node', 'welcome'),
    serverTimeMs: int(m, 'server_time_ms', 'welcome'),
    limits: readLimits(m.limits),
  };
}

/**
 * @param {unknown} v
 * @returns {v is string[]}
 */
const isStringArray = (v) => Array.isArray(v) && v.every((id) => typeof id === 'string');

/**
 * @param {WireMessage} m
 * @returns {ServerMessage}
 */
function readAck(m) {
  if (!isStringArray(m.ids)) throw bad('ack.ids is not an array of strings');
  return { type: 'ack', ids: m.ids };
}

/** @type {ReadonlyArray<readonly [string, 'item' | 'itemName' | 'category' | 'categoryName' | 'segment' | 'locale' | 'kind']>} */
const REASON_STRINGS = [
  ['item', 'item'],
  ['item_name', 'itemName'],
  ['category', 'category'],
  ['category_name', 'categoryName'],
  ['segment', 'segment'],
  ['locale', 'locale'],
  ['kind', 'kind'],
];

/**
 * An item's structured reason (PROTOCOL.md, `recs`), or undefined when it has none or it is not
 * a map with a string code: a reason is an extra, never worth refusing a list for. Fields of
 * the wrong type and fields this SDK does not know are left out.
 * @param {unknown} wire
 * @returns {Reason | undefined}
 */
export function readReason(wire) {
  const r = /** @type {Record<string, unknown> | null} */ (wire !== null && typeof wire === 'object' && !Array.isArray(wire) ? wire : null);
  if (r === null || typeof r.code !== 'string') return undefined;
  /** @type {Reason} */
  const out = { code: r.code };
  for (const [from, to] of REASON_STRINGS) {
    const v = r[from];
    if (typeof v === 'string') out[to] = v;
  }
  if (isInteger(r.age_s) && r.age_s >= 0) out.ageS = r.age_s;
  return out;
}

/**
 * @param {unknown} wire
 * @returns {RecItem}
 */
function readItem(wire) {
  const it = /** @type {Record<string, unknown> | null} */ (wire !== null && typeof wire === 'object' ? wire : null);
  if (it === null || typeof it.item !== 'string') throw bad('recs item without an item id');
  /** @type {RecItem} */
  const out = {
    item: it.item,
    score: typeof it.score === 'number' ? it.score : 0,
    src: typeof it.src === 'string' ? it.src : '',
    why: typeof it.why === 'string' ? it.why : '',
  };
  const reason = readReason(it.reason);
  if (reason !== undefined) out.reason = reason;
  if (typeof it.name === 'string') out.name = it.name;
  if (typeof it.category === 'string') out.category = it.category;
  if (typeof it.price === 'number') out.price = it.price;
  return out;
}

/**
 * @param {WireMessage} m
 * @returns {ServerMessage}
 */
function readRecs(m) {
  if (!Array.isArray(m.items)) throw bad('recs.items is not an array');
  /** @type {{type: 'recs'} & RecsList} */
  const out = {
    type: 'recs',
    surface: str(m, 'surface', 'recs'),
    version: int(m, 'version', 'recs'),
    items: m.items.map(readItem),
    tookUs: isInteger(m.took_us) ? m.took_us : 0,
    variant: typeof m.variant === 'string' ? m.variant : 'control',
  };
  if (typeof m.cause === 'string') out.cause = m.cause;
  return out;
}

/**
 * @param {unknown} v
 * @returns {Record<string, unknown>}
 */
const mapOrEmpty = (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? /** @type {Record<string, unknown>} */ (v) : {});

/**
 * The scores of a recs_delta from its scores_e4: the first, then differences, in ten-thousandths.
 * @param {number[]} e4
 */
function cumulative(e4) {
  let sum = 0;
  return e4.map((x) => (sum += x) / 10000);
}

/**
 * A compact list's changes (PROTOCOL.md, `recs_delta`), checked as far as applying them relies
 * on it: a malformed one throws, and the surface is then subscribed again (compact.js).
 * @param {WireMessage} m
 * @returns {ServerMessage}
 */
function readRecsDelta(m) {
  const { remove = [], place = [], scores_e4: scores, r } = m;
  const ok =
    isStringArray(remove) &&
    Array.isArray(place) &&
    place.every((p) => Array.isArray(p) && p.length === 2 && isInteger(p[0]) && p[0] >= 0 && typeof p[1] === 'string') &&
    Array.isArray(scores) &&
    scores.every(isInteger) &&
    Array.isArray(r) &&
    r.length === scores.length &&
    r.every((x) => isInteger(x) && x >= 0);
  if (!ok) throw bad('recs_delta.remove, place, scores_e4 or r malformed');
  /** @type {Map<string, ItemDetails>} */
  const items = new Map();
  for (const [id, wire] of Object.entries(mapOrEmpty(m.items))) {
    const { name, category, price } = mapOrEmpty(wire);
    /** @type {ItemDetails} */
    const d = {};
    if (typeof name === 'string') d.name = name;
    if (typeof category === 'string') d.category = category;
    if (typeof price === 'number') d.price = price;
    items.set(id, d);
  }
  /** @type {Map<number, ReasonDef>} */
  const reasons = new Map();
  for (const [key, wire] of Object.entries(mapOrEmpty(m.reasons))) {
    const { src, why, reason } = mapOrEmpty(wire);
    if (!/^(0|[1-9]\d{0,8})$/.test(key)) throw bad('recs_delta.reasons key not a number');
    /** @type {ReasonDef} */
    const def = { src: typeof src === 'string' ? src : '', why: typeof why === 'string' ? why : '' };
    const read = readReason(reason);
    if (read !== undefined) def.reason = read;
    reasons.set(+key, def);
  }
  /** @type {{type: 'recs_delta'} & RecsDelta} */
  const out = {
    type: 'recs_delta',
    surface: str(m, 'surface', 'recs_delta'),
    version: int(m, 'version', 'recs_delta'),
    base: int(m, 'base', 'recs_delta'),
    remove,
    place: /** @type {Array<[number, string]>} */ (place),
    scores: cumulative(/** @type {number[]} */ (scores)),
    r: /** @type {number[]} */ (r),
    items,
    reasons,
    tookUs: isInteger(m.took_us) ? m.took_us : 0,
    variant: typeof m.variant === 'string' ? m.variant : 'control',
  };
  if (typeof m.cause === 'string') out.cause = m.cause;
  return out;
}

/**
 * @param {WireMessage} m
 * @returns {ServerMessage}
 */
function readPush(m) {
  return { type: 'push', id: str(m, 'id', 'push'), topic: str(m, 'topic', 'push'), data: m.data };
}

/**
 * @param {WireMessage} m
 * @returns {ServerMessage}
 */
function readPong(m) {
  /** @type {{type: 'pong'} & Pong} */
  const out = { type: 'pong', serverTimeMs: int(m, 'server_time_ms', 'pong') };
  if (m.t !== undefined) out.t = num(m, 't', 'pong');
  return out;
}

/**
 * @param {WireMessage} m
 * @returns {ServerMessage}
 */
function readError(m) {
  /** @type {{type: 'error'} & ErrorMessage} */
  const out = {
    type: 'error',
    code: int(m, 'code', 'error'),
    name: typeof m.name === 'string' ? m.name : '',
    message: typeof m.message === 'string' ? m.message : '',
    fatal: m.fatal === true,
  };
  if (typeof m.id === 'string') out.id = m.id;
  // What the error refuses: the client message's type, with a subscription's surface or a
  // ping's t (PROTOCOL.md §2.2).
  if (typeof m.about === 'string') out.about = m.about;
  if (typeof m.surface === 'string') out.surface = m.surface;
  if (typeof m.t === 'number') out.t = m.t;
  return out;
}

/**
 * @param {WireMessage} m
 * @returns {ServerMessage}
 */
function readAuthOk(m) {
  return { type: 'auth_ok', expMs: int(m, 'exp_ms', 'auth_ok') };
}

/**
 * @param {WireMessage} m
 * @returns {ServerMessage}
 */
function readDrain(m) {
  const after = m.reconnect_after_ms;
  return {
    type: 'drain',
    reason: typeof m.reason === 'string' ? m.reason : '',
    reconnectAfterMs: isInteger(after) && after >= 0 ? after : 0,
  };
}

const READERS = {
  welcome: readWelcome,
  ack: readAck,
  recs: readRecs,
  recs_delta: readRecsDelta,
  push: readPush,
  pong: readPong,
  error: readError,
  drain: readDrain,
  auth_ok: readAuthOk,
};

/**
 * @param {string} type
 * @returns {type is keyof typeof READERS}
 */
const isKnownType = (type) => Object.hasOwn(READERS, type);

/**
 * Reads a decoded server message into its SDK shape; null for a type this SDK does not know.
 * @param {WireMessage} msg
 * @returns {ServerMessage|null}
 */
export function readServerMessage(msg) {
  const reader = isKnownType(msg.type) ? READERS[msg.type] : undefined;
  return reader ? reader(msg) : null;
}

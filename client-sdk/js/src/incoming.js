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

const LIMIT_FIELDS = [
  ['max_message_bytes', 'maxMessageBytes'],
  ['max_batch', 'maxBatch'],
  ['max_subscriptions', 'maxSubscriptions'],
  ['max_k', 'maxK'],
  ['events_per_sec', 'eventsPerSec'],
  ['events_burst', 'eventsBurst'],
];

const bad = (what) => new ClientError('protocol', `server message: ${what}`);

function str(msg, field, type) {
  const v = msg[field];
  if (typeof v !== 'string') throw bad(`${type}.${field} is not a string`);
  return v;
}

function int(msg, field, type) {
  const v = msg[field];
  if (!Number.isInteger(v)) throw bad(`${type}.${field} is not an integer`);
  return v;
}

function num(msg, field, type) {
  const v = msg[field];
  if (typeof v !== 'number') throw bad(`${type}.${field} is not a number`);
  return v;
}

function readLimits(wire) {
  const limits = { ...DEFAULT_LIMITS };
  if (wire !== null && typeof wire === 'object') {
    for (const [from, to] of LIMIT_FIELDS) {
      // A limit that is missing or nonsensical keeps its default rather than stalling delivery.
      if (Number.isInteger(wire[from]) && wire[from] > 0) limits[to] = wire[from];
    }
  }
  return limits;
}

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

function readAck(m) {
  if (!Array.isArray(m.ids) || !m.ids.every((id) => typeof id === 'string')) throw bad('ack.ids is not an array of strings');
  return { type: 'ack', ids: m.ids };
}

function readItem(it) {
  if (it === null || typeof it !== 'object' || typeof it.item !== 'string') throw bad('recs item without an item id');
  const out = {
    item: it.item,
    score: typeof it.score === 'number' ? it.score : 0,
    src: typeof it.src === 'string' ? it.src : '',
    why: typeof it.why === 'string' ? it.why : '',
  };
  if (typeof it.name === 'string') out.name = it.name;
  if (typeof it.category === 'string') out.category = it.category;
  if (typeof it.price === 'number') out.price = it.price;
  return out;
}

function readRecs(m) {
  if (!Array.isArray(m.items)) throw bad('recs.items is not an array');
  const out = {
    type: 'recs',
    surface: str(m, 'surface', 'recs'),
    version: int(m, 'version', 'recs'),
    items: m.items.map(readItem),
    tookUs: Number.isInteger(m.took_us) ? m.took_us : 0,
    variant: typeof m.variant === 'string' ? m.variant : 'control',
  };
  if (typeof m.cause === 'string') out.cause = m.cause;
  return out;
}

function readPush(m) {
  return { type: 'push', id: str(m, 'id', 'push'), topic: str(m, 'topic', 'push'), data: m.data };
}

function readPong(m) {
  const out = { type: 'pong', serverTimeMs: int(m, 'server_time_ms', 'pong') };
  if (m.t !== undefined) out.t = num(m, 't', 'pong');
  return out;
}

function readError(m) {
  const out = {
    type: 'error',
    code: int(m, 'code', 'error'),
    name: typeof m.name === 'string' ? m.name : '',
    message: typeof m.message === 'string' ? m.message : '',
    fatal: m.fatal === true,
  };
  if (typeof m.id === 'string') out.id = m.id;
  return out;
}

function readAuthOk(m) {
  return { type: 'auth_ok', expMs: int(m, 'exp_ms', 'auth_ok') };
}

function readDrain(m) {
  const after = m.reconnect_after_ms;
  return {
    type: 'drain',
    reason: typeof m.reason === 'string' ? m.reason : '',
    reconnectAfterMs: Number.isInteger(after) && after >= 0 ? after : 0,
  };
}

const READERS = {
  welcome: readWelcome,
  ack: readAck,
  recs: readRecs,
  push: readPush,
  pong: readPong,
  error: readError,
  drain: readDrain,
  auth_ok: readAuthOk,
};

/**
 * Reads a decoded server message into its SDK shape; null for a type this SDK does not know.
 * @param {Record<string, unknown> & {type: string}} msg
 */
export function readServerMessage(msg) {
  const reader = Object.hasOwn(READERS, msg.type) ? READERS[msg.type] : undefined;
  return reader ? reader(msg) : null;
}

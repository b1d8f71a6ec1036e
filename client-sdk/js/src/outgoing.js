// Client → server messages of PROTOCOL.md §2.1: builders that check every field against the
// page before anything is sent. The server answers a bad field with 4002 and counts it towards
// 4008 (too many errors, fatal), so a mistake in application code is cheaper caught here, as a
// ClientError('invalid_argument') thrown at the call site. Field order follows the page (and
// proto/vectors), so a message built here encodes byte for byte like the vectors.

import { ClientError } from './errors.js';

export const PROTOCOL_VERSION = 1;

/** Event kinds of PROTOCOL.md §2.1 `event`. */
export const EVENT_KINDS = Object.freeze(['view', 'click', 'cart', 'purchase', 'rating', 'dwell', 'search', 'impression', 'dismiss']);
const KIND_SET = new Set(EVENT_KINDS);

/** Device classes of `hello.device`. */
export const DEVICES = Object.freeze(['desktop', 'mobile', 'tablet', 'other']);
const DEVICE_SET = new Set(DEVICES);

// Both patterns are ASCII-only, so a string's length is its length in bytes.
const ID_RE = /^[A-Za-z0-9._:@-]{1,64}$/;
const SURFACE_RE = /^[a-z0-9_-]{1,32}$/;
const MAX_SAFE_INT = 2 ** 53;
const MAX_NUMBER = 1e300; // the server's bound on `value`, `t` and prices

const utf8 = new TextEncoder();

/** Length of `s` in UTF-8 bytes: the page counts string bounds in bytes. */
export const byteLength = (s) => utf8.encode(s).length;

/** Whether `s` is a protocol id: 1–64 bytes of `A–Z a–z 0–9 . _ : @ -`. */
export const isId = (s) => typeof s === 'string' && ID_RE.test(s);

/** Whether `s` is a surface name: 1–32 bytes of `a–z 0–9 _ -`. */
export const isSurface = (s) => typeof s === 'string' && SURFACE_RE.test(s);

const invalid = (message) => new ClientError('invalid_argument', message);

function checkId(value, what) {
  if (!isId(value)) throw invalid(`${what} must be 1-64 characters of A-Z a-z 0-9 . _ : @ - (got ${JSON.stringify(value)})`);
  return value;
}

function checkSurface(value, what = 'surface') {
  if (!isSurface(value)) throw invalid(`${what} must be 1-32 characters of a-z 0-9 _ - (got ${JSON.stringify(value)})`);
  return value;
}

function checkString(value, what, minBytes, maxBytes) {
  if (typeof value !== 'string') throw invalid(`${what} must be a string`);
  const n = byteLength(value);
  if (n < minBytes || n > maxBytes) throw invalid(`${what} must be ${minBytes}-${maxBytes} bytes of UTF-8 (got ${n})`);
  return value;
}

function checkInt(value, what, min, max) {
  if (!Number.isInteger(value) || value < min || value > max) throw invalid(`${what} must be an integer in ${min}..${max} (got ${value})`);
  return value;
}

function checkNumber(value, what, min, max) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalid(`${what} must be a finite number in ${min}..${max} (got ${value})`);
  }
  return value;
}

function checkKeys(obj, allowed, what) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw invalid(`${what} must be an object`);
  for (const key of Object.keys(obj)) {
    // An undefined value counts as left out, as it would in JSON.stringify.
    if (!allowed.includes(key) && obj[key] !== undefined) throw invalid(`${what} has an unknown field ${JSON.stringify(key)}`);
  }
}

const HELLO_INPUT_KEYS = ['token', 'user', 'device', 'locale', 'tzOffsetMin', 'consent'];

/**
 * The `hello` message. Options left undefined (or null) are left out.
 * @param {{token?: string|null, user?: string|null, device?: string|null, locale?: string|null, tzOffsetMin?: number|null,
 *   consent?: boolean|null}} o
 */
export function helloMessage(o = {}) {
  checkKeys(o, HELLO_INPUT_KEYS, 'hello options');
  const msg = { type: 'hello', v: PROTOCOL_VERSION };
  if (o.token != null && o.token !== '') msg.token = checkString(o.token, 'token', 1, 4096);
  if (o.user != null) msg.user = checkId(o.user, 'user');
  if (o.device != null) {
    if (!DEVICE_SET.has(o.device)) throw invalid(`device must be one of ${DEVICES.join(', ')} (got ${JSON.stringify(o.device)})`);
    msg.device = o.device;
  }
  if (o.locale != null) msg.locale = checkString(o.locale, 'locale', 1, 16);
  if (o.tzOffsetMin != null) msg.tz_offset_min = checkInt(o.tzOffsetMin, 'tzOffsetMin', -840, 840);
  if (o.consent != null) {
    if (typeof o.consent !== 'boolean') throw invalid(`consent must be true or false (got ${JSON.stringify(o.consent)})`);
    msg.consent = o.consent;
  }
  return msg;
}

const EVENT_INPUT_KEYS = ['id', 'kind', 'item', 'value', 'query', 'surface', 'tsMs'];

/**
 * The fields of one event as sent inside `events` (no `type`), checked by the rules of its kind.
 * `event.id` must be given here; the client fills it in before calling this.
 * @param {{id: string, kind: string, item?: string, value?: number, query?: string, surface?: string, tsMs?: number}} event
 */
export function eventFields(event) {
  checkKeys(event, EVENT_INPUT_KEYS, 'event');
  const out = { id: checkId(event.id, 'event.id') };
  const kind = event.kind;
  if (!KIND_SET.has(kind)) throw invalid(`event.kind must be one of ${EVENT_KINDS.join(', ')} (got ${JSON.stringify(kind)})`);
  out.kind = kind;
  if (event.item !== undefined) out.item = checkId(event.item, 'event.item');
  else if (kind !== 'search') throw invalid(`event.item is required for kind "${kind}"`);
  if (event.value !== undefined) out.value = checkNumber(event.value, 'event.value', -MAX_NUMBER, MAX_NUMBER);
  checkValueForKind(kind, out.value);
  if (event.query !== undefined) out.query = checkString(event.query, 'event.query', 1, 256);
  else if (kind === 'search') throw invalid('event.query is required for kind "search"');
  if (event.surface !== undefined) out.surface = checkSurface(event.surface, 'event.surface');
  if (event.tsMs !== undefined) out.ts_ms = checkInt(event.tsMs, 'event.tsMs', 0, MAX_SAFE_INT);
  return out;
}

/** The rules on `value` that depend on the kind (PROTOCOL.md §2.1 `event`). */
function checkValueForKind(kind, value) {
  if (kind === 'rating' && (value === undefined || value < 1 || value > 5)) throw invalid('event.value must be 1-5 for kind "rating"');
  if (kind === 'dwell' && (value === undefined || value < 0)) throw invalid('event.value (milliseconds) must be >= 0 for kind "dwell"');
  if ((kind === 'purchase' || kind === 'cart') && value !== undefined && value <= 0) {
    throw invalid(`event.value (quantity) must be > 0 for kind "${kind}"`);
  }
}

/** One `event` message from checked fields (see eventFields). */
export const eventMessage = (fields) => ({ type: 'event', ...fields });

/** One `events` message from checked fields; 1 to max_batch of them. */
export const eventsMessage = (list) => ({ type: 'events', events: list });

const SUBSCRIBE_KEYS = ['k', 'category', 'priceMin', 'priceMax'];

/**
 * The `subscribe` message. `maxK` is welcome.limits.max_k when known.
 * @param {string} surface
 * @param {{k?: number, category?: string, priceMin?: number, priceMax?: number}} [params]
 * @param {number} [maxK]
 */
export function subscribeMessage(surface, params = {}, maxK = 100) {
  checkKeys(params, SUBSCRIBE_KEYS, 'subscribe options');
  const msg = { type: 'subscribe', surface: checkSurface(surface) };
  if (params.k !== undefined) {
    msg.k = checkInt(params.k, 'k', 1, 100);
    if (msg.k > maxK) throw new ClientError('limit_exceeded', `k ${msg.k} is above the server's max_k ${maxK}`);
  }
  if (params.category !== undefined) msg.category = checkString(params.category, 'category', 1, 64);
  if (params.priceMin !== undefined) msg.price_min = checkNumber(params.priceMin, 'priceMin', 0, MAX_NUMBER);
  if (params.priceMax !== undefined) msg.price_max = checkNumber(params.priceMax, 'priceMax', 0, MAX_NUMBER);
  return msg;
}

/** The `unsubscribe` message. */
export const unsubscribeMessage = (surface) => ({ type: 'unsubscribe', surface: checkSurface(surface) });

/** The `auth` message: a fresh token for the live session (the same subject). */
export const authMessage = (token) => ({ type: 'auth', token: checkString(token, 'token', 1, 4096) });

/** The `ping` message; `t` (any finite number) comes back in `pong`. */
export function pingMessage(t) {
  const msg = { type: 'ping' };
  if (t !== undefined) msg.t = checkNumber(t, 'ping t', -MAX_NUMBER, MAX_NUMBER);
  return msg;
}

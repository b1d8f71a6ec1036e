// SPDX-License-Identifier: Apache-2.0
// Client → server messages of PROTOCOL.md §2.1: builders that check every field against the
// page before anything is sent. The server answers a bad field with 4002 and counts it towards
// 4008 (too many errors, fatal), so a mistake in application code is cheaper caught here, as a
// ClientError('invalid_argument') thrown at the call site. Field order follows the page (and
// proto/vectors), so a message built here encodes byte for byte like the vectors.

import { ClientError } from './errors.js';

export const PROTOCOL_VERSION = 1;

/** Event kinds of PROTOCOL.md §2.1 `event`. */
export const EVENT_KINDS = Object.freeze(/** @type {const} */ (['view', 'click', 'cart', 'purchase', 'rating', 'dwell', 'search', 'impression', 'dismiss']));
/** @type {ReadonlySet<unknown>} */
const KIND_SET = new Set(EVENT_KINDS);

/** Device classes of `hello.device`. */
export const DEVICES = Object.freeze(/** @type {const} */ (['desktop', 'mobile', 'tablet', 'other']));

/** Repeat policies of `subscribe.repeat`: whether a list may show items of the session again. */
const REPEATS = Object.freeze(/** @type {const} */ (['never', 'not_current', 'allowed']));

/**
 * @typedef {(typeof EVENT_KINDS)[number]} EventKind
 * @typedef {(typeof DEVICES)[number]} Device
 * @typedef {(typeof REPEATS)[number]} Repeat
 *
 * One interaction as given to track(); index.d.ts declares the same (published-vs-source.ts
 * in test-support/types checks it).
 * @typedef {{kind: EventKind, item?: string, value?: number, query?: string, surface?: string, tsMs?: number,
 *   id?: string}} TrackEvent
 * @typedef {{id: string, kind: EventKind, item?: string, value?: number, query?: string, surface?: string,
 *   ts_ms?: number}} EventFields  one checked event as it goes on the wire
 * @typedef {{k?: number, category?: string, priceMin?: number, priceMax?: number, repeat?: Repeat, compact?: boolean}} SubscribeOptions
 * @typedef {{token?: string|null, user?: string|null, device?: string|null, locale?: string|null,
 *   tzOffsetMin?: number|null, consent?: boolean|null}} HelloOptions
 */

// Both patterns are ASCII-only, so a string's length is its length in bytes.
const ID_RE = /^[A-Za-z0-9._:@-]{1,64}$/;
const SURFACE_RE = /^[a-z0-9_-]{1,32}$/;
const MAX_SAFE_INT = 2 ** 53;
const MAX_NUMBER = 1e300; // the server's bound on `value`, `t` and prices

const utf8 = new TextEncoder();

/**
 * Length of `s` in UTF-8 bytes: the page counts string bounds in bytes.
 * @param {string} s
 */
export const byteLength = (s) => utf8.encode(s).length;

/**
 * Whether `s` is a protocol id: 1–64 bytes of `A–Z a–z 0–9 . _ : @ -`.
 * @param {unknown} s
 * @returns {s is string}
 */
export const isId = (s) => typeof s === 'string' && ID_RE.test(s);

/**
 * Whether `s` is a surface name: 1–32 bytes of `a–z 0–9 _ -`.
 * @param {unknown} s
 * @returns {s is string}
 */
export const isSurface = (s) => typeof s === 'string' && SURFACE_RE.test(s);

/**
 * @param {unknown} k
 * @returns {k is EventKind}
 */
const isEventKind = (k) => KIND_SET.has(k);

/** @type {ReadonlySet<unknown>} */
const DEVICE_SET = new Set(DEVICES);

/**
 * @param {unknown} d
 * @returns {d is Device}
 */
const isDevice = (d) => DEVICE_SET.has(d);

/** @param {string} message */
const invalid = (message) => new ClientError('invalid_argument', message);

// The checks take `unknown`: the SDK is used from plain JavaScript, so whatever the types say,
// any value can arrive here. Each returns the value, now known to be of its type.

/**
 * @param {unknown} value
 * @param {string} what
 */
function checkId(value, what) {
  if (!isId(value)) throw invalid(`${what} must be 1-64 characters of A-Z a-z 0-9 . _ : @ - (got ${JSON.stringify(value)})`);
  return value;
}

/**
 * @param {unknown} value
 * @param {string} [what]
 */
function checkSurface(value, what = 'surface') {
  if (!isSurface(value)) throw invalid(`${what} must be 1-32 characters of a-z 0-9 _ - (got ${JSON.stringify(value)})`);
  return value;
}

/**
 * @param {unknown} value
 * @param {string} what
 * @param {number} minBytes
 * @param {number} maxBytes
 */
function checkString(value, what, minBytes, maxBytes) {
  if (typeof value !== 'string') throw invalid(`${what} must be a string`);
  const n = byteLength(value);
  if (n < minBytes || n > maxBytes) throw invalid(`${what} must be ${minBytes}-${maxBytes} bytes of UTF-8 (got ${n})`);
  return value;
}

/**
 * @param {unknown} value
 * @param {string} what
 * @param {number} min
 * @param {number} max
 */
function checkInt(value, what, min, max) {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw invalid(`${what} must be an integer in ${min}..${max} (got ${value})`);
  return value;
}

/**
 * @param {unknown} value
 * @param {string} what
 * @param {number} min
 * @param {number} max
 */
function checkNumber(value, what, min, max) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalid(`${what} must be a finite number in ${min}..${max} (got ${value})`);
  }
  return value;
}

/**
 * @param {unknown} obj
 * @param {readonly string[]} allowed
 * @param {string} what
 */
function checkKeys(obj, allowed, what) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw invalid(`${what} must be an object`);
  const fields = /** @type {Record<string, unknown>} */ (obj);
  for (const key of Object.keys(fields)) {
    // An undefined value counts as left out, as it would in JSON.stringify.
    if (!allowed.includes(key) && fields[key] !== undefined) throw invalid(`${what} has an unknown field ${JSON.stringify(key)}`);
  }
}

// The field lists are written as maps so that tsc checks each names exactly the fields of its type.
const HELLO_INPUT_KEYS = Object.keys(
  /** @satisfies {Record<keyof HelloOptions, true>} */ ({ token: true, user: true, device: true, locale: true, tzOffsetMin: true, consent: true }),
);

/**
 * The `hello` message. Options left undefined (or null) are left out.
 * @param {HelloOptions} o
 */
export function helloMessage(o = {}) {
  checkKeys(o, HELLO_INPUT_KEYS, 'hello options');
  /** @type {{type: 'hello', v: number, token?: string, user?: string, device?: Device, locale?: string, tz_offset_min?: number, consent?: boolean}} */
  const msg = { type: 'hello', v: PROTOCOL_VERSION };
  if (o.token != null && o.token !== '') msg.token = checkString(o.token, 'token', 1, 4096);
  if (o.user != null) msg.user = checkId(o.user, 'user');
  if (o.device != null) {
    if (!isDevice(o.device)) throw invalid(`device must be one of ${DEVICES.join(', ')} (got ${JSON.stringify(o.device)})`);
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

const EVENT_INPUT_KEYS = Object.keys(
  /** @satisfies {Record<keyof TrackEvent, true>} */ ({ id: true, kind: true, item: true, value: true, query: true, surface: true, tsMs: true }),
);

/**
 * The fields of one event as sent inside `events` (no `type`), checked by the rules of its kind.
 * `event.id` must be given here; the client fills it in before calling this.
 * @param {TrackEvent & {id: string}} event
 * @returns {EventFields}
 */
export function eventFields(event) {
  checkKeys(event, EVENT_INPUT_KEYS, 'event');
  const id = checkId(event.id, 'event.id');
  const kind = event.kind;
  if (!isEventKind(kind)) throw invalid(`event.kind must be one of ${EVENT_KINDS.join(', ')} (got ${JSON.stringify(kind)})`);
  /** @type {EventFields} */
  const out = { id, kind };
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

/**
 * The rules on `value` that depend on the kind (PROTOCOL.md §2.1 `event`).
 * @param {EventKind} kind
 * @param {number|undefined} value
 */
function checkValueForKind(kind, value) {
  if (kind === 'rating' && (value === undefined || value < 1 || value > 5)) throw invalid('event.value must be 1-5 for kind "rating"');
  if (kind === 'dwell' && (value === undefined || value < 0)) throw invalid('event.value (milliseconds) must be >= 0 for kind "dwell"');
  if ((kind === 'purchase' || kind === 'cart') && value !== undefined && value <= 0) {
    throw invalid(`event.value (quantity) must be > 0 for kind "${kind}"`);
  }
}

/**
 * One `event` message from checked fields (see eventFields).
 * @param {EventFields} fields
 */
export const eventMessage = (fields) => ({ type: 'event', ...fields });

/**
 * One `events` message from checked fields; 1 to max_batch of them.
 * @param {EventFields[]} list
 */
export const eventsMessage = (list) => ({ type: 'events', events: list });

const SUBSCRIBE_KEYS = Object.keys(/** @satisfies {Record<keyof SubscribeOptions, true>} */ ({ k: true, category: true, priceMin: true, priceMax: true, repeat: true, compact: true }));

/** @type {ReadonlySet<unknown>} */
const REPEAT_SET = new Set(REPEATS);

/**
 * The `subscribe` message. `maxK` is welcome.limits.max_k when known.
 * @param {string} surface
 * @param {SubscribeOptions} [params]
 * @param {number} [maxK]
 */
export function subscribeMessage(surface, params = {}, maxK = 100) {
  checkKeys(params, SUBSCRIBE_KEYS, 'subscribe options');
  /** @type {{type: 'subscribe', surface: string, k?: number, category?: string, price_min?: number, price_max?: number, repeat?: Repeat, compact?: boolean}} */
  const msg = { type: 'subscribe', surface: checkSurface(surface) };
  if (params.k !== undefined) {
    const k = checkInt(params.k, 'k', 1, 100);
    msg.k = k;
    if (k > maxK) throw new ClientError('limit_exceeded', `k ${k} is above the server's max_k ${maxK}`);
  }
  if (params.category !== undefined) msg.category = checkString(params.category, 'category', 1, 64);
  if (params.priceMin !== undefined) msg.price_min = checkNumber(params.priceMin, 'priceMin', 0, MAX_NUMBER);
  if (params.priceMax !== undefined) msg.price_max = checkNumber(params.priceMax, 'priceMax', 0, MAX_NUMBER);
  if (params.repeat !== undefined) {
    if (!REPEAT_SET.has(params.repeat)) throw invalid(`repeat must be one of ${REPEATS.join(', ')} (got ${JSON.stringify(params.repeat)})`);
    msg.repeat = params.repeat;
  }
  if (params.compact !== undefined) {
    if (typeof params.compact !== 'boolean') throw invalid(`compact must be a boolean (got ${JSON.stringify(params.compact)})`);
    msg.compact = params.compact;
  }
  return msg;
}

/**
 * The `unsubscribe` message.
 * @param {string} surface
 */
export const unsubscribeMessage = (surface) => ({ type: 'unsubscribe', surface: checkSurface(surface) });

/**
 * The `auth` message: a fresh token for the live session (the same subject).
 * @param {string} token
 */
export const authMessage = (token) => ({ type: 'auth', token: checkString(token, 'token', 1, 4096) });

/**
 * The `ping` message; `t` (any finite number) comes back in `pong`.
 * @param {number} [t]
 */
export function pingMessage(t) {
  /** @type {{type: 'ping', t?: number}} */
  const msg = { type: 'ping' };
  if (t !== undefined) msg.t = checkNumber(t, 'ping t', -MAX_NUMBER, MAX_NUMBER);
  return msg;
}

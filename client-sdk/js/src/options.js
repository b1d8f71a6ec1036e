// SPDX-License-Identifier: Apache-2.0
// Client options: defaults, checks and the environment lookups (WebSocket implementation,
// localStorage, locale, clock). Every check happens in the constructor, so a misconfigured
// client fails where it is created, not on its first reconnect.

import { ClientError } from './errors.js';
import { EVENT_KINDS, helloMessage } from './outgoing.js';

/**
 * The options are the one input type taken from index.d.ts itself (they are declared once,
 * there, with their documentation); KNOWN_OPTIONS below must name exactly its fields.
 * @typedef {import('../index.js').ClientOptions} ClientOptions
 * @typedef {import('../index.js').BackoffPolicy} BackoffPolicy
 * @typedef {import('../index.js').StorageLike} StorageLike
 * @typedef {import('../index.js').WebSocketConstructor} WebSocketConstructor
 * @typedef {import('./timers.js').TimerClock & {random: () => number}} Clock
 * @typedef {ReturnType<typeof resolveOptions>} ResolvedOptions
 */

export const DEFAULT_OPTIONS = Object.freeze({
  encoding: 'msgpack',
  autoConnect: true,
  reconnect: Object.freeze({ baseMs: 500, capMs: 30_000 }),
  retry: Object.freeze({ baseMs: 250, capMs: 30_000 }),
  batchWindowMs: 15,
  immediateKinds: Object.freeze(/** @type {import('../index.js').EventKind[]} */ ([])),
  ackTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  pingIntervalMs: 25_000,
  pongTimeoutMs: 10_000,
  drainJitterMs: 1_000,
  refreshAheadMs: 30_000,
  maxQueue: 1_000,
  timestamps: true,
  storage: 'auto',
});

/** @param {string} message */
const invalid = (message) => new ClientError('invalid_argument', message);

/**
 * @param {unknown} value
 * @param {string} name
 * @returns {number}
 */
function nonNegative(value, name) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw invalid(`${name} must be a number >= 0 (got ${value})`);
  return value;
}

/**
 * @param {BackoffPolicy|undefined} value
 * @param {Required<BackoffPolicy>} fallback
 * @param {string} name
 * @returns {Required<BackoffPolicy>}
 */
function backoffPolicy(value, fallback, name) {
  if (value === undefined) return fallback;
  if (value === null || typeof value !== 'object') throw invalid(`${name} must be {baseMs, capMs}`);
  const policy = { baseMs: nonNegative(value.baseMs ?? fallback.baseMs, `${name}.baseMs`), capMs: nonNegative(value.capMs ?? fallback.capMs, `${name}.capMs`) };
  if (policy.capMs < policy.baseMs) throw invalid(`${name}.capMs must be >= ${name}.baseMs`);
  return policy;
}

/**
 * The kinds sent without waiting for the batch window: an array of event kinds, each known.
 * @param {unknown} value
 * @returns {ReadonlySet<import('../index.js').EventKind>}
 */
function immediateKinds(value) {
  if (value === undefined) return new Set();
  if (!Array.isArray(value)) throw invalid('immediateKinds must be an array of event kinds');
  for (const kind of value) {
    if (!EVENT_KINDS.includes(kind)) throw invalid(`immediateKinds: ${JSON.stringify(kind)} is not an event kind (${EVENT_KINDS.join(', ')})`);
  }
  return new Set(value);
}

/**
 * ws:// or wss:// URL of the server's /ws endpoint; http(s) is mapped, an empty path is /ws.
 * @param {ClientOptions['url']} url
 * @returns {string}
 */
export function normalizeUrl(url) {
  const text = typeof url === 'string' ? url : typeof url?.href === 'string' ? url.href : null;
  if (text === null) throw invalid('url must be a string or a URL');
  let u;
  try {
    u = new URL(text, globalThis.location?.href);
  } catch {
    throw invalid(`url is not a valid URL: ${String(url)}`);
  }
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw invalid(`url must be ws:, wss:, http: or https: (got ${u.protocol})`);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/ws';
  return u.toString();
}

/**
 * @param {WebSocketConstructor|undefined} impl
 * @returns {WebSocketConstructor}
 */
function resolveWebSocket(impl) {
  if (impl !== undefined) {
    if (typeof impl !== 'function') throw invalid('WebSocket must be a WebSocket constructor (e.g. the default export of the ws package)');
    return impl;
  }
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  throw invalid('no WebSocket implementation: pass options.WebSocket (in Node 20: `import WebSocket from "ws"`)');
}

/** localStorage in a browser when usable; null in Node or when storage is blocked. */
function browserStorage() {
  try {
    const ls = typeof window !== 'undefined' ? window.localStorage : undefined;
    if (!ls) return null;
    const probe = '__rankcast_probe__';
    ls.setItem(probe, '1');
    ls.removeItem(probe);
    return ls;
  } catch {
    return null; // private mode, disabled storage, sandboxed iframe
  }
}

/**
 * @param {unknown} value
 * @returns {value is StorageLike}
 */
function isStorageLike(value) {
  if (value === null || typeof value !== 'object') return false;
  const methods = /** @type {Record<string, unknown>} */ (value);
  return ['getItem', 'setItem', 'removeItem'].every((m) => typeof methods[m] === 'function');
}

/**
 * @param {unknown} value  ClientOptions['storage'], or anything a JavaScript caller passed
 * @returns {StorageLike|null}
 */
function resolveStorage(value) {
  if (value === 'auto' || value === undefined) return browserStorage();
  if (value === null || value === false) return null;
  if (isStorageLike(value)) return value;
  throw invalid("storage must be 'auto', null, or an object with getItem/setItem/removeItem");
}

function autoLocale() {
  const lang = globalThis.navigator?.language;
  return typeof lang === 'string' && lang.length > 0 && lang.length <= 16 ? lang : undefined;
}

/** Offset from UTC in minutes (UTC+1 is 60), read at each hello so DST changes are seen. */
export function autoTzOffsetMin() {
  const min = -new Date().getTimezoneOffset();
  return Math.max(-840, Math.min(840, min)) || 0;
}

/**
 * @param {ClientOptions['clock']} [clock]
 * @returns {Clock}
 */
function resolveClock(clock = {}) {
  return {
    now: clock.now ?? (() => performance.now()),
    setTimeout: clock.setTimeout ?? ((fn, ms) => setTimeout(fn, ms)),
    // The handle is what setTimeout gave: a number in browsers, a Timeout object in Node (whose
    // clearTimeout takes either); the DOM's typing knows numbers only.
    clearTimeout: clock.clearTimeout ?? ((h) => clearTimeout(/** @type {number} */ (h))),
    random: clock.random ?? Math.random,
  };
}

/** Every option's name: written as a map so that tsc checks it names exactly ClientOptions' fields. */
const KNOWN_OPTIONS = new Set(
  Object.keys(
    /** @satisfies {Record<keyof ClientOptions, true>} */ ({
      url: true, token: true, tokenProvider: true, user: true, device: true, locale: true, tzOffsetMin: true, consent: true,
      encoding: true, WebSocket: true, autoConnect: true, reconnect: true, retry: true, batchWindowMs: true, immediateKinds: true, ackTimeoutMs: true,
      connectTimeoutMs: true, pingIntervalMs: true, pongTimeoutMs: true, drainJitterMs: true, maxQueue: true, timestamps: true,
      storage: true, storageKey: true, clock: true, refreshAheadMs: true, debug: true,
    }),
  ),
);

/**
 * Checks `options` and fills in the defaults.
 * @param {ClientOptions} options
 */
export function resolveOptions(options) {
  if (options === null || typeof options !== 'object') throw invalid('createClient needs an options object with a url');
  for (const key of Object.keys(options)) {
    // A misspelt option would otherwise be ignored without a word.
    if (!KNOWN_OPTIONS.has(key)) throw invalid(`unknown option ${JSON.stringify(key)}`);
  }
  const o = { ...DEFAULT_OPTIONS, ...options };
  const url = normalizeUrl(options.url);
  if (o.encoding !== 'msgpack' && o.encoding !== 'json') throw invalid(`encoding must be 'msgpack' or 'json' (got ${JSON.stringify(o.encoding)})`);
  if (o.tokenProvider !== undefined && typeof o.tokenProvider !== 'function') throw invalid('tokenProvider must be a function');
  if (o.token !== undefined && o.tokenProvider !== undefined) throw invalid('give token or tokenProvider, not both');
  if (o.debug !== undefined && typeof o.debug !== 'function') throw invalid('debug must be a function');
  const locale = o.locale === undefined ? autoLocale() : (o.locale ?? undefined);
  // Checks user, device, locale, tzOffsetMin and a static token now (throws invalid_argument).
  helloMessage({ token: o.token, user: o.user, device: o.device, locale, tzOffsetMin: o.tzOffsetMin ?? undefined, consent: o.consent });
  if (!Number.isInteger(o.maxQueue) || o.maxQueue < 1) throw invalid(`maxQueue must be an integer >= 1 (got ${o.maxQueue})`);
  for (const name of /** @type {const} */ (['batchWindowMs', 'ackTimeoutMs', 'connectTimeoutMs', 'pingIntervalMs', 'pongTimeoutMs', 'drainJitterMs', 'refreshAheadMs'])) {
    nonNegative(o[name], name);
  }
  const storage = resolveStorage(options.storage);
  return {
    url,
    encoding: o.encoding,
    token: o.token,
    tokenProvider: o.tokenProvider,
    user: o.user ?? undefined,
    device: o.device ?? undefined,
    locale,
    // undefined: detect at each hello; null: leave out.
    tzOffsetMin: o.tzOffsetMin,
    consent: o.consent ?? undefined,
    WebSocket: resolveWebSocket(options.WebSocket),
    autoConnect: o.autoConnect !== false,
    reconnect: backoffPolicy(options.reconnect, DEFAULT_OPTIONS.reconnect, 'reconnect'),
    retry: backoffPolicy(options.retry, DEFAULT_OPTIONS.retry, 'retry'),
    batchWindowMs: o.batchWindowMs,
    immediateKinds: immediateKinds(options.immediateKinds),
    ackTimeoutMs: Math.max(1, o.ackTimeoutMs),
    connectTimeoutMs: Math.max(1, o.connectTimeoutMs),
    pingIntervalMs: o.pingIntervalMs,
    pongTimeoutMs: Math.max(1, o.pongTimeoutMs),
    drainJitterMs: o.drainJitterMs,
    refreshAheadMs: o.refreshAheadMs,
    debug: o.debug,
    maxQueue: o.maxQueue,
    timestamps: o.timestamps !== false,
    storage,
    storageKey: typeof o.storageKey === 'string' ? o.storageKey : `rankcast.outbox:${url}:${o.user ?? ''}`,
    clock: resolveClock(options.clock),
  };
}

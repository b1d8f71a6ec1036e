// SPDX-License-Identifier: Apache-2.0
// Unit tests of the SDK's parts that need no socket: backoff, token bucket, timers, emitter,
// outbox (order, bound, persistence), message builders' checks, options, errors and ids.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fullJitterDelay } from '../src/backoff.js';
import { ClientError, SERVER_ERRORS, ServerError, isRetryableCode } from '../src/errors.js';
import { Emitter } from '../src/emitter.js';
import { randomEventId } from '../src/ids.js';
import { readServerMessage } from '../src/incoming.js';
import { normalizeUrl, resolveOptions } from '../src/options.js';
import { eventFields, helloMessage, subscribeMessage } from '../src/outgoing.js';
import { Outbox } from '../src/outbox.js';
import { TokenBucket } from '../src/rate.js';
import { MAX_TIMER_MS, refreshDelayMs, tokenExpiryMs } from '../src/refresh.js';
import { TimerSet } from '../src/timers.js';

import { MemoryStorage } from '../test-support/helpers.mjs';

const isInvalid = (code = 'invalid_argument') => (e) => e instanceof ClientError && e.code === code;

test('full-jitter backoff stays within [0, min(cap, base * 2^attempt))', () => {
  const policy = { baseMs: 100, capMs: 5000 };
  assert.equal(fullJitterDelay(0, policy, () => 0), 0);
  assert.equal(fullJitterDelay(0, policy, () => 0.999999), 99);
  assert.equal(fullJitterDelay(3, policy, () => 0.5), 400);
  assert.equal(fullJitterDelay(10, policy, () => 0.999999), 4999);
  assert.equal(fullJitterDelay(1e9, policy, () => 0.5), 2500, 'a huge attempt count stays finite and capped');
  for (let attempt = 0; attempt < 20; attempt++) {
    const d = fullJitterDelay(attempt, policy);
    assert.ok(d >= 0 && d < Math.min(5000, 100 * 2 ** attempt), `attempt ${attempt}: ${d}`);
  }
});

test('token bucket starts full, refills at its rate, and drains on rate_limited', () => {
  let now = 0;
  const b = new TokenBucket(10, 5, () => now);
  assert.equal(b.available(), 5);
  b.take(5);
  assert.equal(b.available(), 0);
  assert.equal(b.msUntil(1), 100);
  now = 250;
  assert.equal(b.available(), 2);
  now = 10_000;
  assert.equal(b.available(), 5, 'never above the burst');
  b.drain();
  assert.equal(b.available(), 0);
});

test('timer set: one timer per name, setEarliest keeps the earlier, clearAll empties', async () => {
  const timers = new TimerSet({ setTimeout, clearTimeout, now: () => performance.now() });
  const fired = [];
  timers.set('a', 5, () => fired.push('a1'));
  timers.set('a', 5, () => fired.push('a2'));
  timers.set('b', 1000, () => fired.push('b'));
  timers.setEarliest('b', 10, () => fired.push('b-early'));
  timers.setEarliest('b', 500, () => fired.push('b-late'));
  assert.equal(timers.size, 2);
  await new Promise((r) => setTimeout(r, 40));
  assert.deepEqual(fired, ['a2', 'b-early']);
  assert.equal(timers.size, 0);
  timers.set('c', 10, () => fired.push('c'));
  timers.clearAll();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(timers.size, 0);
  assert.deepEqual(fired, ['a2', 'b-early']);
});

test('emitter: on/off/once and listener counts; a throwing listener does not stop the others', async () => {
  const e = new Emitter();
  const got = [];
  const off = e.on('x', (v) => got.push(`1:${v}`));
  e.once('x', (v) => got.push(`once:${v}`));
  const uncaught = [];
  // As in a browser: listener exceptions go to reportError.
  const savedReportError = globalThis.reportError;
  globalThis.reportError = (err) => uncaught.push(err.message);
  e.on('x', () => {
    throw new Error('listener bug');
  });
  e.on('x', (v) => got.push(`3:${v}`));
  assert.equal(e.listenerCount(), 4);
  e.emit('x', 1);
  e.emit('x', 2);
  off();
  e.emit('x', 3);
  await new Promise((r) => setTimeout(r, 10));
  globalThis.reportError = savedReportError;
  assert.deepEqual(got, ['1:1', 'once:1', '3:1', '1:2', '3:2', '3:3']);
  assert.deepEqual(uncaught, ['listener bug', 'listener bug', 'listener bug'], 'the exception is reported asynchronously');
  assert.equal(e.listenerCount(), 2);
});

const ev = (id, extra = {}) => eventFields({ id, kind: 'view', item: 'i1', ...extra });

test('outbox keeps order, takes due entries, releases and bounds itself (oldest dropped)', () => {
  const box = new Outbox({ maxEvents: 3, storage: null, storageKey: 'k' });
  assert.deepEqual(box.add(ev('a'), null), []);
  box.add(ev('b'), null);
  box.add(ev('c'), null);
  const dropped = box.add(ev('d'), null);
  assert.deepEqual(dropped.map((e) => e.id), ['a']);
  assert.deepEqual([...box.entries.keys()], ['b', 'c', 'd']);
  const first = box.takeDue(100, 2);
  assert.deepEqual(first.map((e) => e.id), ['b', 'c']);
  assert.equal(box.inFlightCount, 2);
  assert.equal(box.dueCount(100), 1);
  box.release(first[1], 50, 100);
  assert.equal(box.nextDueAtMs(), 0, 'd is due now');
  assert.deepEqual(box.takeDue(100, 5).map((e) => e.id), ['d'], 'c waits for its retry delay');
  assert.equal(box.nextDueAtMs(), 150);
  assert.deepEqual(box.takeDue(150, 5).map((e) => e.id), ['c']);
  assert.equal(box.oldestSentAtMs(), 100);
  assert.equal(box.releaseSentBefore(120), 2);
  box.delete('b');
  box.releaseAll();
  assert.equal(box.inFlightCount, 0);
  assert.deepEqual(box.takeDue(1000, 5).map((e) => e.id), ['c', 'd']);
});

test('outbox: a repeated id adds a waiter to the pending event', () => {
  const box = new Outbox({ maxEvents: 10, storage: null, storageKey: 'k' });
  const w1 = { resolve() {}, reject() {} };
  const w2 = { resolve() {}, reject() {} };
  box.add(ev('same'), w1);
  box.add(ev('same'), w2);
  assert.equal(box.size, 1);
  assert.equal(box.get('same').waiters.length, 2);
});

test('outbox persists to a Storage (coalesced) and a new outbox restores it, dropping bad entries', async () => {
  const storage = new MemoryStorage();
  const box = new Outbox({ maxEvents: 10, storage, storageKey: 'q' });
  box.add(ev('p1', { tsMs: 5 }), null);
  box.add(ev('p2'), null);
  box.add(eventFields({ id: 'p3', kind: 'search', query: 'mug' }), null);
  assert.equal(storage.writes, 0, 'written once per microtask, not per change');
  await Promise.resolve();
  assert.equal(storage.writes, 1);
  const stored = JSON.parse(storage.getItem('q'));
  assert.deepEqual(stored.map((e) => e.id), ['p1', 'p2', 'p3']);
  assert.equal(stored[0].ts_ms, 5);
  stored.push({ id: 'bad id', kind: 'view', item: 'x' }, 'junk', { id: 'p4', kind: 'rating', item: 'x', value: 9 });
  storage.setItem('q', JSON.stringify(stored));
  const restored = new Outbox({ maxEvents: 10, storage, storageKey: 'q' });
  assert.deepEqual([...restored.entries.keys()], ['p1', 'p2', 'p3']);
  assert.deepEqual(restored.get('p1').fields, { id: 'p1', kind: 'view', item: 'i1', ts_ms: 5 });
  restored.delete('p1');
  restored.delete('p2');
  restored.delete('p3');
  await Promise.resolve();
  assert.equal(storage.getItem('q'), null, 'an empty queue removes its key');
  storage.setItem('q', '{not json');
  const errors = [];
  const broken = new Outbox({ maxEvents: 10, storage, storageKey: 'q', onStorageError: (e) => errors.push(e) });
  assert.equal(broken.size, 0);
  assert.equal(errors.length, 1);
});

test('event checks follow the rules of each kind (PROTOCOL.md §2.1)', () => {
  assert.deepEqual(eventFields({ id: 'e1', kind: 'search', query: 'mug', tsMs: 1 }), { id: 'e1', kind: 'search', query: 'mug', ts_ms: 1 });
  assert.deepEqual(eventFields({ id: 'e1', kind: 'cart', item: 'i', value: 2, surface: 'home' }), {
    id: 'e1', kind: 'cart', item: 'i', value: 2, surface: 'home',
  });
  const bad = [
    { id: 'e 1', kind: 'view', item: 'i' },
    { id: 'e1', kind: 'like', item: 'i' },
    { id: 'e1', kind: 'click' },
    { id: 'e1', kind: 'rating', item: 'i' },
    { id: 'e1', kind: 'rating', item: 'i', value: 0 },
    { id: 'e1', kind: 'dwell', item: 'i', value: -1 },
    { id: 'e1', kind: 'purchase', item: 'i', value: 0 },
    { id: 'e1', kind: 'search' },
    { id: 'e1', kind: 'search', query: '' },
    { id: 'e1', kind: 'search', query: 'é'.repeat(129) },
    { id: 'e1', kind: 'view', item: 'i', surface: 'Home' },
    { id: 'e1', kind: 'view', item: 'i', tsMs: 1.5 },
    { id: 'e1', kind: 'view', item: 'i', value: Number.NaN },
    { id: 'e1', kind: 'view', item: 'i', value: Infinity },
    { id: 'e1', kind: 'view', item: 'i', itme: 'typo' },
    { id: 'x'.repeat(65), kind: 'view', item: 'i' },
  ];
  for (const e of bad) assert.throws(() => eventFields(e), isInvalid(), JSON.stringify(e));
  assert.doesNotThrow(() => eventFields({ id: 'e1', kind: 'search', query: 'é'.repeat(128) }), '256 bytes is within bounds');
});

test('subscribe and hello checks', () => {
  assert.deepEqual(subscribeMessage('pdp', { k: 5, category: 'kitchen', priceMin: 0, priceMax: 20.5 }), {
    type: 'subscribe', surface: 'pdp', k: 5, category: 'kitchen', price_min: 0, price_max: 20.5,
  });
  for (const [surface, params] of [['Home', {}], ['', {}], ['a'.repeat(33), {}], ['home', { k: 0 }], ['home', { k: 101 }], ['home', { k: 2.5 }],
    ['home', { category: '' }], ['home', { category: 'c'.repeat(65) }], ['home', { priceMin: -0.01 }], ['home', { kk: 1 }]]) {
    assert.throws(() => subscribeMessage(surface, params), isInvalid(), `${surface} ${JSON.stringify(params)}`);
  }
  assert.throws(() => subscribeMessage('home', { k: 50 }, 20), isInvalid('limit_exceeded'));
  assert.deepEqual(helloMessage({ token: 't', user: 'u1', device: 'mobile', locale: 'en-GB', tzOffsetMin: 60 }), {
    type: 'hello', v: 1, token: 't', user: 'u1', device: 'mobile', locale: 'en-GB', tz_offset_min: 60,
  });
  assert.deepEqual(helloMessage({ token: '', user: null }), { type: 'hello', v: 1 }, 'empty token and null fields are left out');
  assert.deepEqual(helloMessage({ user: 'u42', consent: false }), { type: 'hello', v: 1, user: 'u42', consent: false });
  for (const o of [{ consent: 'no' }, { user: 'u 1' }, { device: 'phone' }, { locale: 'x'.repeat(17) }, { tzOffsetMin: 841 }, { token: 't'.repeat(4097) }, { usr: 'x' }]) {
    assert.throws(() => helloMessage(o), isInvalid(), JSON.stringify(o));
  }
});

test('options: URL normalisation, unknown options, missing WebSocket', () => {
  assert.equal(normalizeUrl('ws://h:1'), 'ws://h:1/ws');
  assert.equal(normalizeUrl('http://h:1/'), 'ws://h:1/ws');
  assert.equal(normalizeUrl('https://h/custom/path'), 'wss://h/custom/path');
  assert.throws(() => normalizeUrl('ftp://h'), isInvalid());
  assert.throws(() => normalizeUrl('not a url'), isInvalid());
  class FakeWs {}
  assert.throws(() => resolveOptions({ url: 'ws://h', WebSocket: FakeWs, tokenprovider: () => 't' }), isInvalid());
  assert.throws(() => resolveOptions({ url: 'ws://h', WebSocket: FakeWs, user: 'not valid' }), isInvalid());
  assert.throws(() => resolveOptions({ url: 'ws://h', WebSocket: FakeWs, token: 'a', tokenProvider: () => 'b' }), isInvalid());
  assert.throws(() => resolveOptions({ url: 'ws://h', WebSocket: FakeWs, encoding: 'cbor' }), isInvalid());
  assert.throws(() => resolveOptions({ url: 'ws://h', WebSocket: FakeWs, reconnect: { baseMs: 10, capMs: 5 } }), isInvalid());
  assert.throws(() => resolveOptions({ url: 'ws://h', WebSocket: FakeWs, maxQueue: 0 }), isInvalid());
  assert.throws(() => resolveOptions({ url: 'ws://h', WebSocket: FakeWs, immediateKinds: ['clik'] }), isInvalid());
  assert.throws(() => resolveOptions({ url: 'ws://h', WebSocket: FakeWs, immediateKinds: 'click' }), isInvalid());
  assert.deepEqual([...resolveOptions({ url: 'ws://h', WebSocket: FakeWs, immediateKinds: ['click'] }).immediateKinds], ['click']);
  assert.equal(resolveOptions({ url: 'ws://h', WebSocket: FakeWs }).immediateKinds.size, 0, 'by default every kind waits for the batch window');
  if (typeof globalThis.WebSocket !== 'function') {
    assert.throws(() => resolveOptions({ url: 'ws://h' }), (e) => isInvalid()(e) && /ws/.test(e.message));
  }
  const o = resolveOptions({ url: 'ws://h', WebSocket: FakeWs });
  assert.equal(o.storage, null, 'no localStorage in Node: the queue lives in memory');
  assert.equal(o.encoding, 'msgpack');
  assert.deepEqual(o.reconnect, { baseMs: 500, capMs: 30000 });
});

test('ServerError carries the server code, name, detail, event id and retryability', () => {
  const wire = readServerMessage({ type: 'error', code: 4020, name: 'rate_limited', message: 'slow down', id: 'e-1', fatal: false });
  const err = new ServerError(wire);
  assert.ok(err instanceof Error);
  assert.equal(err.code, 4020);
  assert.equal(err.codeName, 'rate_limited');
  assert.equal(err.serverMessage, 'slow down');
  assert.equal(err.eventId, 'e-1');
  assert.equal(err.retryable, true);
  assert.equal(err.fatal, false);
  assert.match(err.message, /4020 rate_limited: slow down/);
  assert.deepEqual(Object.keys(SERVER_ERRORS).map(Number).filter(isRetryableCode), [4020, 4500, 4503]);
  for (const [code, info] of Object.entries(SERVER_ERRORS)) assert.ok(Number(code) >= 4000 && Number(code) <= 4503 && info.name);
});

test('event ids are UUIDs, also without crypto.randomUUID', () => {
  const re = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  assert.match(randomEventId(), re);
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  const real = globalThis.crypto;
  try {
    // An insecure browser context: getRandomValues but no randomUUID.
    Object.defineProperty(globalThis, 'crypto', { value: { getRandomValues: (b) => real.getRandomValues(b) }, configurable: true });
    assert.match(randomEventId(), re);
    Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true });
    const ids = new Set(Array.from({ length: 1000 }, () => randomEventId()));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.match(id, re);
  } finally {
    Object.defineProperty(globalThis, 'crypto', saved);
  }
});

test('token refresh: exp read from a JWT (or null), delay ahead of exp, never before half-life', () => {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  assert.equal(tokenExpiryMs(`${part({ alg: 'none' })}.${part({ sub: 'ü-user', exp: 1_900_000_000 })}.x`), 1_900_000_000_000);
  assert.equal(tokenExpiryMs(`${part({})}.${part({ sub: 'u' })}.x`), null, 'no exp');
  assert.equal(tokenExpiryMs(`${part({})}.${part({ exp: '1' })}.x`), null, 'exp not a number');
  assert.equal(tokenExpiryMs('opaque-token'), null);
  assert.equal(tokenExpiryMs('a.!!!.c'), null);
  assert.equal(refreshDelayMs(100_000, 0, 30_000), 70_000);
  assert.equal(refreshDelayMs(40_000, 0, 30_000), 20_000, 'half-life when aheadMs exceeds it');
  assert.equal(refreshDelayMs(0, 5_000, 30_000), 0, 'expired: at once');
  assert.ok(refreshDelayMs(90 * 86_400_000, 0, 30_000) > MAX_TIMER_MS, 'long tokens exceed one timer (the client re-arms)');
});

test('a recs item reads its structured reason leniently: bad parts are left out, never the list', () => {
  const recs = (reason) => readServerMessage({ type: 'recs', surface: 's', version: 1, items: [{ item: 'a', score: 1, src: 'repeat', why: 'w', reason }], took_us: 1, variant: 'control' });
  const first = (reason) => recs(reason).items[0];
  assert.deepEqual(first({ code: 'repeat', kind: 'cart', age_s: 61 }).reason, { code: 'repeat', kind: 'cart', ageS: 61 });
  assert.deepEqual(
    first({ code: 'similar', item: 'x', item_name: 'X', category: 'c', category_name: 'C', segment: 'mobile', locale: 'de-DE' }).reason,
    { code: 'similar', item: 'x', itemName: 'X', category: 'c', categoryName: 'C', segment: 'mobile', locale: 'de-DE' },
  );
  // A field of the wrong type, a negative or fractional age, a field this SDK does not know.
  assert.deepEqual(first({ code: 'repeat', kind: 3, age_s: -1, item: null, later: 'x' }).reason, { code: 'repeat' });
  assert.deepEqual(first({ code: 'repeat', age_s: 1.5 }).reason, { code: 'repeat' });
  // No code, not a map, or absent: no reason at all, and the item is still read.
  for (const bad of [{ kind: 'view' }, 'repeat', ['repeat'], null, undefined, { code: 7 }]) {
    const it = first(bad);
    assert.equal('reason' in it, false, JSON.stringify(bad));
    assert.equal(it.why, 'w');
  }
});

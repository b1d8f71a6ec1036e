// SPDX-License-Identifier: Apache-2.0
// The shared protocol vectors (proto/vectors/vectors.json) against the SDK's codec and message
// builders: every valid client→server vector is produced by the SDK, byte for byte where the
// vector is the canonical encoding of a message in the page's field order (else decode-equal);
// every server→client vector decodes in both encodings to the same object; every invalid
// vector the SDK's API can express is refused before it is sent.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { decode, encode } from '@msgpack/msgpack';

import { decodeMessage, encodeMessage, loadMsgpack } from '../src/codec.js';
import { ClientError } from '../src/errors.js';
import { readServerMessage } from '../src/incoming.js';
import { authMessage, eventFields, eventMessage, eventsMessage, helloMessage, pingMessage, subscribeMessage, unsubscribeMessage } from '../src/outgoing.js';

// The codec loads MessagePack on demand: until then 'msgpack' is refused and JSON works.
const refusedBeforeLoad = (() => {
  try {
    encodeMessage({ type: 'ping', t: 1 }, 'msgpack');
    return null;
  } catch (err) {
    return err;
  }
})();
const jsonBeforeLoad = decodeMessage(encodeMessage({ type: 'ping', t: 1 }, 'json'), 'json');
await loadMsgpack();
test('MessagePack is refused until loadMsgpack() resolved; JSON needs no load', () => {
  assert.ok(refusedBeforeLoad instanceof ClientError && refusedBeforeLoad.code === 'invalid_argument', String(refusedBeforeLoad));
  assert.deepEqual(jsonBeforeLoad, { type: 'ping', t: 1 });
});

const here = dirname(fileURLToPath(import.meta.url));
const VECTORS_PATH = process.env.RANKCAST_VECTORS ? resolve(process.env.RANKCAST_VECTORS) : join(here, '../../../proto/vectors/vectors.json');
const vectors = JSON.parse(readFileSync(VECTORS_PATH, 'utf8'));

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const fromHex = (h) => new Uint8Array(Buffer.from(h, 'hex'));

/** A wire event (without type) as the argument of track(). */
function eventInput(wire) {
  const { ts_ms: tsMs, ...rest } = wire;
  return tsMs === undefined ? rest : { ...rest, tsMs };
}

/**
 * Builds `wire` through the SDK's builders, from the API-level input that means it. Returns
 * undefined when the SDK's API cannot express the message at all (a reason is given).
 */
function buildWithSdk(wire) {
  if (wire === null || typeof wire !== 'object' || Array.isArray(wire)) return { skip: 'not a map: the SDK only builds maps' };
  const { type, ...f } = wire;
  switch (type) {
    case 'hello': {
      const { v, tz_offset_min: tzOffsetMin, ...rest } = f;
      if (v !== 1) return { skip: 'the SDK always sends v: 1' };
      return { msg: helloMessage(tzOffsetMin === undefined ? rest : { ...rest, tzOffsetMin }) };
    }
    case 'event':
      return { msg: eventMessage(eventFields(eventInput(f))) };
    case 'events':
      if (!Array.isArray(f.events) || f.events.length === 0 || f.events.length > 100 || Object.keys(f).length !== 1) {
        return { skip: 'batches are formed by the SDK itself (1..max_batch events, no other field)' };
      }
      return { msg: eventsMessage(f.events.map((e) => eventFields(eventInput(e)))) };
    case 'subscribe': {
      const { surface, price_min: priceMin, price_max: priceMax, ...rest } = f;
      const params = { ...rest };
      if ('price_min' in f) params.priceMin = priceMin;
      if ('price_max' in f) params.priceMax = priceMax;
      return { msg: subscribeMessage(surface, params) };
    }
    case 'unsubscribe':
      if (Object.keys(f).length !== 1) return { skip: 'unsubscribe takes only a surface' };
      return { msg: unsubscribeMessage(f.surface) };
    case 'ping':
      if (Object.keys(f).some((k) => k !== 't')) return { skip: 'ping takes only t' };
      return { msg: pingMessage(f.t) };
    case 'auth':
      return { msg: authMessage(f.token) };
    default:
      return { skip: `the SDK never sends type ${JSON.stringify(type)}` };
  }
}

const sameKeyOrder = (a, b) => JSON.stringify(Object.keys(a)) === JSON.stringify(Object.keys(b));

/** Whether the vector's MessagePack is what the reference encoder makes of its own value. */
const canonicalMsgpack = (h) => hex(encode(decode(fromHex(h)))) === h;

const c2sValid = vectors.filter((v) => v.dir === 'c2s' && v.error === undefined);
const c2sInvalid = vectors.filter((v) => v.dir === 'c2s' && v.error !== undefined);
const s2c = vectors.filter((v) => v.dir === 's2c');

test('the vectors file has cases of every kind', () => {
  assert.ok(c2sValid.length >= 20, `c2s valid: ${c2sValid.length}`);
  assert.ok(c2sInvalid.length >= 20, `c2s invalid: ${c2sInvalid.length}`);
  assert.ok(s2c.length >= 10, `s2c: ${s2c.length}`);
});

test('every valid c2s vector is produced by the SDK (byte-identical where canonical)', async (t) => {
  const decodeEqualOnly = [];
  for (const v of c2sValid) {
    await t.test(v.name, () => {
      const value = v.json !== undefined ? JSON.parse(v.json) : decode(fromHex(v.msgpack_hex));
      const built = buildWithSdk(value);
      assert.ok(built.msg, `the SDK cannot build a valid message: ${built.skip}`);
      const ours = { json: encodeMessage(built.msg, 'json'), msgpack: encodeMessage(built.msg, 'msgpack') };
      let identical = true;
      if (v.json !== undefined) {
        assert.deepStrictEqual(JSON.parse(ours.json), JSON.parse(v.json), 'JSON decodes to the same value');
        if (ours.json !== v.json) {
          identical = false;
          assert.ok(
            JSON.stringify(JSON.parse(v.json)) !== v.json || !sameKeyOrder(built.msg, value),
            `JSON differs though the vector is compact and in page order:\n ours ${ours.json}\n want ${v.json}`,
          );
        }
      }
      if (v.msgpack_hex !== undefined) {
        assert.deepStrictEqual(decode(ours.msgpack), decode(fromHex(v.msgpack_hex)), 'MessagePack decodes to the same value');
        if (hex(ours.msgpack) !== v.msgpack_hex) {
          identical = false;
          assert.ok(
            !canonicalMsgpack(v.msgpack_hex) || !sameKeyOrder(built.msg, value),
            `MessagePack differs though the vector is canonical and in page order:\n ours ${hex(ours.msgpack)}\n want ${v.msgpack_hex}`,
          );
        }
      }
      if (!identical) decodeEqualOnly.push(v.name);
    });
  }
  t.diagnostic(`decode-equal but not byte-identical (non-canonical vector or other field order): ${decodeEqualOnly.join('; ')}`);
  assert.ok(decodeEqualOnly.length <= 6, `too many vectors only decode-equal: ${decodeEqualOnly.length}`);
});

test('every invalid c2s vector the API can express is refused before sending', async (t) => {
  const inexpressible = [];
  for (const v of c2sInvalid) {
    let value;
    try {
      value = v.json !== undefined ? JSON.parse(v.json) : decode(fromHex(v.msgpack_hex));
    } catch {
      inexpressible.push(`${v.name} (not decodable: the SDK only encodes values)`);
      continue;
    }
    let built;
    try {
      built = buildWithSdk(value);
    } catch (err) {
      await t.test(v.name, () => {
        assert.ok(err instanceof ClientError, `threw ${err}`);
        assert.ok(['invalid_argument', 'limit_exceeded'].includes(err.code), `code ${err.code}`);
      });
      continue;
    }
    if (built.skip) {
      inexpressible.push(`${v.name} (${built.skip})`);
      continue;
    }
    // The vector's fault is in its encoding (`2.0` where an int belongs, an exponent), which
    // decodes to a value the SDK builds fine: it must then send a different, valid encoding.
    await t.test(v.name, () => {
      if (v.json !== undefined) assert.notEqual(encodeMessage(built.msg, 'json'), v.json, 'the SDK reproduced an invalid JSON message');
      if (v.msgpack_hex !== undefined) assert.notEqual(hex(encodeMessage(built.msg, 'msgpack')), v.msgpack_hex, 'the SDK reproduced an invalid MessagePack message');
    });
  }
  t.diagnostic(`not expressible through the API (${inexpressible.length}): ${inexpressible.join("; ")}`);
});

test('every s2c vector decodes in both encodings to the same object', async (t) => {
  for (const v of s2c) {
    await t.test(v.name, () => {
      const fromJson = decodeMessage(v.json, 'json');
      const fromMsgpack = decodeMessage(fromHex(v.msgpack_hex), 'msgpack');
      assert.deepStrictEqual(fromMsgpack, fromJson);
      assert.deepStrictEqual(fromJson, JSON.parse(v.json));
      // An ArrayBuffer (what browsers deliver) decodes the same as a Uint8Array.
      const buf = fromHex(v.msgpack_hex);
      assert.deepStrictEqual(decodeMessage(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), 'msgpack'), fromJson);
      const readJson = readServerMessage(fromJson);
      const readMsgpack = readServerMessage(fromMsgpack);
      assert.ok(readJson, `the SDK does not read type ${fromJson.type}`);
      assert.deepStrictEqual(readMsgpack, readJson);
    });
  }
});

test('s2c vectors read into the SDK shapes', () => {
  const byName = Object.fromEntries(s2c.map((v) => [v.name, readServerMessage(JSON.parse(v.json))]));
  const recs = byName['recs caused by an event'];
  assert.equal(recs.type, 'recs');
  assert.equal(typeof recs.version, 'number');
  assert.equal(typeof recs.cause, 'string');
  assert.equal(typeof recs.tookUs, 'number');
  assert.ok(recs.items.length > 0 && typeof recs.items[0].why === 'string');
  assert.equal('cause' in byName['recs on subscribe'], false);
  // Structured reasons, camelCase; an item without one (an older server) has none.
  assert.deepEqual(recs.items[0].reason, { code: 'co_visited', item: '85123A', itemName: 'White Hanging Heart T-Light Holder' });
  assert.deepEqual(recs.items[1].reason, {
    code: 'similar', item: '85123A', itemName: 'White Hanging Heart T-Light Holder', category: 'candles-lights', categoryName: 'Candles & lights',
  });
  const onSubscribe = byName['recs on subscribe'];
  assert.deepEqual(onSubscribe.items[0].reason, { code: 'trending_context', segment: 'mobile' });
  assert.deepEqual(onSubscribe.items[2].reason, { code: 'trending_locale', locale: 'en-GB' });
  const again = byName['recs with an item of the session again'];
  assert.deepEqual(again.items[0].reason, { code: 'repeat', kind: 'view', ageS: 150 });
  assert.deepEqual(again.items[2].reason, { code: 'repeat' });
  assert.equal('reason' in again.items.at(-1), false);
  const welcome = byName.welcome;
  assert.deepEqual(Object.keys(welcome.limits).sort(), ['eventsBurst', 'eventsPerSec', 'maxBatch', 'maxK', 'maxMessageBytes', 'maxSubscriptions']);
  const err = byName['error about an event'];
  assert.equal(err.code, 4002);
  assert.equal(err.id, 'e-0102');
  assert.equal(err.fatal, false);
  assert.equal(byName['error fatal'].fatal, true);
  assert.equal(byName.drain.reconnectAfterMs, 2000);
  assert.deepEqual(byName.push.data, JSON.parse(s2c.find((v) => v.name === 'push').json).data);
  assert.equal(byName['pong with t'].t, 1763800000000.25);
});

test('a frame of the wrong kind, or one that is not a map, is a protocol error', () => {
  const bytes = encode({ type: 'pong', server_time_ms: 1 });
  assert.throws(() => decodeMessage(bytes, 'json'), (e) => e instanceof ClientError && e.code === 'protocol');
  assert.throws(() => decodeMessage('{"type":"pong"}', 'msgpack'), (e) => e instanceof ClientError && e.code === 'protocol');
  assert.throws(() => decodeMessage('[1]', 'json'), (e) => e.code === 'protocol');
  assert.throws(() => decodeMessage('{"type":1}', 'json'), (e) => e.code === 'protocol');
  assert.throws(() => decodeMessage('{"type":', 'json'), (e) => e.code === 'protocol');
  assert.throws(() => decodeMessage(new Uint8Array([0x81, 0xa4]), 'msgpack'), (e) => e.code === 'protocol');
});

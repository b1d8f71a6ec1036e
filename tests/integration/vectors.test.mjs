// SPDX-License-Identifier: Apache-2.0
// Sends every client-to-server case of proto/vectors/vectors.json to the real server, in each
// encoding the case has: a case with `error` must be answered with exactly that error, a valid
// case must be answered as PROTOCOL.md says (welcome, ack, recs, pong, or nothing) and never
// with an error. Also checks that vectors.json is what cases.mjs generates.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';

import { decode } from '@msgpack/msgpack';

import { buildVectors, vectorsText } from '../../proto/vectors/generate.mjs';
import {
  CompactLists,
  ENCODINGS,
  ERRORS,
  REPO_ROOT,
  SUBPROTOCOL,
  assertAck,
  assertError,
  assertPong,
  assertRecs,
  assertWelcome,
  closeAllClients,
  connect,
  connectHello,
  isId,
  startServer,
  stopServerCleanly,
  uniqueId,
} from './harness.mjs';

const VECTORS_PATH = join(REPO_ROOT, 'proto/vectors/vectors.json');
const vectors = JSON.parse(readFileSync(VECTORS_PATH, 'utf8'));

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  closeAllClients();
  await stopServerCleanly(server);
});
afterEach(() => {
  assert.deepEqual(closeAllClients(), []);
});

test('vectors.json is what proto/vectors/generate.mjs makes of cases.mjs', () => {
  assert.equal(readFileSync(VECTORS_PATH, 'utf8'), vectorsText(buildVectors()), 'run node proto/vectors/generate.mjs');
});

/** The case's message in `enc` as sent on the wire, or undefined if it has no such form. */
function payloadOf(v, enc) {
  if (enc === 'json') return v.json;
  return v.msgpack_hex === undefined ? undefined : Buffer.from(v.msgpack_hex, 'hex');
}

/** What the payload decodes to, or undefined when it does not decode. */
function decoded(v, enc) {
  try {
    return enc === 'json' ? JSON.parse(v.json) : decode(Buffer.from(v.msgpack_hex, 'hex'));
  } catch {
    return undefined;
  }
}

const isMap = (x) => x !== null && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Uint8Array);

/** Ids of events in `msg` that are valid ids: each error about such an event must carry it. */
function eventIds(msg) {
  if (!isMap(msg)) return [];
  if (msg.type === 'event') return isId(msg.id) ? [msg.id] : [];
  if (msg.type === 'events' && Array.isArray(msg.events) && msg.events.length <= 100) {
    return msg.events.filter((e) => isMap(e) && isId(e.id)).map((e) => e.id);
  }
  return [];
}

async function runInvalid(v, enc, payload, msg) {
  const binary = enc === 'msgpack';
  // A hello is judged as the first message; anything else after a successful hello, so that
  // 4004 hello_required cannot stand in for the error the case is about.
  const client = isMap(msg) && msg.type === 'hello' ? await connect(server, enc) : (await connectHello(server, enc, { user: uniqueId('vec') })).client;
  client.sendRaw(payload, { binary });
  const first = await client.nextAny();
  assertError(first, v.error);
  const ids = eventIds(msg);
  if (ids.length > 0) {
    const errors = [first];
    for (let i = 1; i < ids.length; i++) errors.push(await client.next('error'));
    assert.deepEqual(errors.map((e) => e.id).sort(), [...ids].sort(), 'errors about events carry their ids');
  }
  if (ERRORS[v.error].fatal) {
    assert.equal((await client.waitClose()).code, v.error);
  } else {
    await client.roundTrip();
  }
}

async function runValid(v, enc, payload, msg) {
  const binary = enc === 'msgpack';
  if (msg.type === 'hello') {
    const client = await connect(server, enc);
    client.sendRaw(payload, { binary });
    const answer = await client.nextAny();
    if (msg.token !== undefined && answer.type === 'error') {
      // PROTOCOL.md does not say what a server without authentication does with a token; it
      // may refuse it as unverifiable (4010) but nothing else.
      assertError(answer, 4010);
      return;
    }
    assert.equal(answer.type, 'welcome', `answered with ${JSON.stringify(answer)}`);
    assertWelcome(answer, msg.user);
    await client.roundTrip();
    return;
  }

  const { client } = await connectHello(server, enc, { user: uniqueId('vec') });
  if (msg.type === 'unsubscribe') await client.subscribe(msg.surface);
  client.sendRaw(payload, { binary });
  switch (msg.type) {
    case 'event':
      assertAck(await client.nextAny(), [msg.id]);
      break;
    case 'events':
      assertAck(await client.nextAny(), msg.events.map((e) => e.id));
      break;
    case 'subscribe': {
      const answer = await client.nextAny();
      // A compact subscription is answered with the whole list as a recs_delta from nothing.
      const recs = msg.compact ? new CompactLists().apply(answer) : answer;
      if (msg.compact) assert.equal(answer.base, 0);
      assertRecs(recs, { surface: msg.surface, cause: null });
      const k = msg.k ?? 10;
      assert.ok(recs.items.length >= 1 && recs.items.length <= k, `${recs.items.length} items for k=${k}`);
      for (const it of recs.items) {
        const known = server.items.find((c) => c.id === it.item);
        assert.ok(known, `recommended item ${it.item} is not in the catalog`);
        if (msg.category !== undefined) assert.equal(known.category, msg.category);
        if (msg.price_min !== undefined) assert.ok(known.price >= msg.price_min, `${it.item} costs ${known.price}`);
        if (msg.price_max !== undefined) assert.ok(known.price <= msg.price_max, `${it.item} costs ${known.price}`);
      }
      break;
    }
    case 'unsubscribe':
      break; // no answer on success; the round trip below proves nothing else came
    case 'ping':
      assertPong(await client.nextAny(), msg.t);
      break;
    case 'auth':
      // A well-formed refresh on a server that verifies no tokens: refused like any token
      // it cannot verify (4010, fatal).
      assertError(await client.nextAny(), 4010);
      assert.equal((await client.waitClose()).code, 4010);
      return;
    default:
      assert.fail(`valid vector of unexpected type ${msg.type}`);
  }
  await client.roundTrip();
  assert.deepEqual(client.inbox, [], 'unexpected messages');
  assert.deepEqual(client.log.filter((m) => m.type === 'error'), []);
}

for (const enc of ENCODINGS) {
  describe(`c2s vectors over ${SUBPROTOCOL[enc]}`, () => {
    for (const v of vectors.filter((x) => x.dir === 'c2s')) {
      const payload = payloadOf(v, enc);
      if (payload === undefined) continue;
      const label = v.error === undefined ? `${v.name}: accepted` : `${v.name}: error ${v.error}`;
      test(label, async () => {
        const msg = decoded(v, enc);
        if (v.error !== undefined) await runInvalid(v, enc, payload, msg);
        else await runValid(v, enc, payload, msg);
      });
    }
  });
}

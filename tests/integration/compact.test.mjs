// SPDX-License-Identifier: Apache-2.0
// Compact lists through the real server (PROTOCOL.md, `subscribe` `compact`, `recs_delta`): a
// client that applies each delta to the list it holds, with the details it keeps, has after
// every push the very list a whole-list subscriber of the same user got for that version; an
// item's details go once per connection; a new connection and a re-subscription start from a
// whole list; and the deltas are a fraction of the whole lists' bytes. In both encodings.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { CompactLists, assertReason, closeAllClients, connectHello, sleep, startServer, stopServerCleanly, uniqueId } from './harness.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  closeAllClients();
  await stopServerCleanly(server);
});

const K = 20;

/** Subscribes compact and resolves to the first recs_delta of the surface. */
async function subscribeCompact(client, surface, params = {}) {
  client.send({ type: 'subscribe', surface, k: K, compact: true, ...params });
  const d = await client.next((m) => (m.type === 'recs_delta' && m.surface === surface) || m.type === 'error');
  assert.equal(d.type, 'recs_delta', JSON.stringify(d));
  return d;
}

/** The list as a client compares it: every field of every item. */
const shape = (list) => list.items.map((it) => JSON.stringify(it, Object.keys(it).sort()));

for (const enc of ['json', 'msgpack']) {
  test(`${enc}: applied deltas are the whole lists, details go once, deltas are small`, async () => {
    const user = uniqueId('cmp');
    const { client: whole } = await connectHello(server, enc, { user });
    const { client: compact } = await connectHello(server, enc, { user });
    const lists = new CompactLists();
    await whole.subscribe('home', { k: K });
    const first = await subscribeCompact(compact, 'home');
    assert.equal(first.base, 0, 'the first list goes whole');
    assert.equal(first.place.length, K);
    assert.equal(Object.keys(first.items).length, K, 'every item with its details');
    let held = lists.apply(first);
    for (const it of held.items) assertReason(it);

    const wholeByVersion = new Map();
    const appliedByVersion = new Map();
    let wholeBytes = 0;
    let compactBytes = 0;
    const named = new Map(); // item -> how many deltas carried its name
    const countNames = (d) => {
      for (const [id, f] of Object.entries(d.items ?? {})) if ('name' in f) named.set(id, (named.get(id) ?? 0) + 1);
    };
    countNames(first);
    const EVENTS = 25;
    for (let e = 0; e < EVENTS; e++) {
      // Click an item of the list: it leaves the list (repeat "never"), so a list is pushed.
      const item = held.items[(e * 7) % held.items.length].item;
      const id = uniqueId('e');
      whole.send({ type: 'event', id, kind: 'click', item });
      await whole.next((m) => m.type === 'ack' && m.ids.includes(id));
      const full = await whole.next((m) => m.type === 'recs' && m.cause === id);
      const d = await compact.next((m) => m.type === 'recs_delta' && m.cause === id);
      wholeBytes += whole.sizeOf(full);
      compactBytes += compact.sizeOf(d);
      countNames(d);
      held = lists.apply(d);
      wholeByVersion.set(full.version, full);
      appliedByVersion.set(d.version, held);
      assert.equal(d.version, full.version, 'one version per change, the same on both connections');
    }
    for (const [version, applied] of appliedByVersion) {
      const full = wholeByVersion.get(version);
      assert.deepEqual(shape(applied), shape(full), `version ${version}: the delta applied is not the whole list`);
      assert.equal(applied.cause, full.cause);
      assert.equal(applied.variant, full.variant);
    }
    for (const [id, times] of named) assert.equal(times, 1, `${id}'s details went ${times} times`);
    // Bytes: measured, not timed (docs/benchmarks.md has the figures of bench/compact-bytes.mjs).
    assert.ok(compactBytes * 2 < wholeBytes, `compact ${compactBytes} B vs whole ${wholeBytes} B over ${EVENTS} events`);

    // Re-subscribing starts from a whole list, without the details this connection has.
    lists.forget('home');
    const again = await subscribeCompact(compact, 'home');
    assert.equal(again.base, 0);
    for (const f of Object.values(again.items ?? {})) assert.equal('name' in f, false, 'details sent twice on one connection');
    assert.deepEqual(shape(lists.apply(again)), shape(held));

    // A new connection is sent everything again.
    const { client: fresh } = await connectHello(server, enc, { user });
    const anew = await subscribeCompact(fresh, 'home');
    assert.equal(anew.base, 0);
    assert.deepEqual(shape(new CompactLists().apply(anew)), shape(held));
    assertCleanCompact(compact);
  });
}

/** No whole list reached a compact subscription. */
function assertCleanCompact(client) {
  assert.deepEqual(client.badFrames, []);
  assert.equal(client.log.some((m) => m.type === 'recs'), false, 'a compact subscription got a whole list');
}

test('a slow reader gets a delta against the list it was last sent, never one it skipped', async () => {
  const user = uniqueId('cmp-slow');
  const { client: actor } = await connectHello(server, 'json', { user });
  const { client: reader } = await connectHello(server, 'json', { user });
  const lists = new CompactLists();
  lists.apply(await subscribeCompact(reader, 'home'));
  // A burst of events: the reader's outbox coalesces lists it has not written yet, so the
  // deltas it does get name as base only versions it got.
  const ids = [];
  for (let e = 0; e < 30; e++) {
    const id = uniqueId('e');
    ids.push(id);
    actor.send({ type: 'event', id, kind: 'view', item: server.items[(e * 11) % server.items.length].id });
  }
  await actor.next((m) => m.type === 'ack' && m.ids.includes(ids.at(-1)), 5000);
  await sleep(300);
  const deltas = reader.log.filter((m) => m.type === 'recs_delta').slice(1);
  assert.ok(deltas.length > 0);
  for (const d of deltas) lists.apply(d); // throws on a base not held
  assertCleanCompact(reader);
});

test('compact must be a bool', async () => {
  const { client } = await connectHello(server, 'msgpack', { user: uniqueId('cmp-bad') });
  client.send({ type: 'subscribe', surface: 'home', compact: 'yes' });
  const err = await client.nextError(4002);
  assert.match(err.message, /compact/);
  client.send({ type: 'subscribe', surface: 'home', compact: false });
  const list = await client.next((m) => m.type === 'recs' || m.type === 'recs_delta');
  assert.equal(list.type, 'recs', 'compact: false is the whole list');
});

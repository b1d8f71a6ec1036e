// SPDX-License-Identifier: Apache-2.0
// The session life of PROTOCOL.md against the real server, on both subprotocols: hello, subscribe,
// events and the lists they push, de-duplication, purchases and dismissals, several connections
// of one user, batches, unsubscribe, limits, handshake rules, and drain on shutdown.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import {
  DEFAULT_LIMITS,
  ENCODINGS,
  SUBPROTOCOL,
  assertAck,
  assertCleanClient,
  assertError,
  assertPong,
  assertRecs,
  closeAllClients,
  connect,
  connectHello,
  sleep,
  startServer,
  stopServerCleanly,
  uniqueId,
} from './harness.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  closeAllClients();
  await stopServerCleanly(server);
});
afterEach(() => {
  assert.deepEqual(closeAllClients(), [], 'clients saw bad frames or out-of-order versions');
});

const categoryOf = (id) => server.items.find((it) => it.id === id)?.category;
const itemIds = (recs) => recs.items.map((it) => it.item);
const errorsIn = (client) => client.log.filter((m) => m.type === 'error');

/** The share of `recs`' items that belong to `category`. */
function share(recs, category) {
  return recs.items.filter((it) => categoryOf(it.item) === category).length / recs.items.length;
}

/** Sends one event and waits for its ack, asserting the ack names exactly this event. */
async function sendEvent(client, fields) {
  const id = fields.id ?? uniqueId('ev');
  const sentAt = performance.now();
  client.send({ type: 'event', id, ...fields });
  const ack = await client.next((m) => (m.type === 'ack' && m.ids.includes(id)) || (m.type === 'error' && m.id === id));
  assertAck(ack, [id]);
  return { id, sentAt };
}

/**
 * took_us is the server's time from receiving the message to encoding the list, so it cannot
 * exceed what the client measured from sending to receiving (1 ms of slack for timer grain).
 */
function assertTookWithin(client, recs, sentAt) {
  const roundTripUs = (client.arrivedAt(recs) - sentAt) * 1000;
  assert.ok(recs.took_us <= roundTripUs + 1000, `took_us ${recs.took_us} exceeds the client's round trip of ${roundTripUs.toFixed(0)} µs`);
}

for (const enc of ENCODINGS) {
  describe(`session over ${SUBPROTOCOL[enc]}`, () => {
    test('hello is answered by welcome with the fields and default limits of the page', async () => {
      const user = uniqueId('u');
      const { client, welcome } = await connectHello(server, enc, { user, device: 'mobile', locale: 'en-GB', tz_offset_min: 60 });
      assert.equal(client.ws.protocol, SUBPROTOCOL[enc]);
      assert.equal(welcome.user, user);
      assert.equal(welcome.node, 'it1');
      assert.deepEqual(welcome.limits, DEFAULT_LIMITS);
      assertCleanClient(client);

      // Without a user the server assigns one (anon-…); connectHello checks the prefix.
      const anon = await connectHello(server, enc);
      assert.notEqual(anon.welcome.session, welcome.session, 'two connections got the same session id');
    });

    test('subscribe answers at once with k items, each with item, score, src and why', async () => {
      const { client } = await connectHello(server, enc, { user: uniqueId('u') });
      for (const [surface, k] of [['home', 10], ['pdp', 3], ['one', 1]]) {
        const sentAt = performance.now();
        client.send({ type: 'subscribe', surface, k });
        const recs = await client.next((m) => m.type === 'recs' || m.type === 'error');
        assertRecs(recs, { surface, k, cause: null });
        assertTookWithin(client, recs, sentAt);
        for (const it of recs.items) {
          const known = server.items.find((c) => c.id === it.item);
          assert.ok(known, `recommended item ${it.item} is not in the catalog`);
          // The catalog knows every item, so name, category and price must all be there.
          assert.equal(it.name, known.name);
          assert.equal(it.category, known.category);
          // A number may travel as float32 in MessagePack, so compare to float32 precision.
          assert.ok(Math.abs(it.price - known.price) <= 1e-6 * Math.max(1, known.price), `${it.item} price ${it.price} ≠ ${known.price}`);
        }
      }
      // Default k is 10.
      const dflt = await client.subscribe('dflt');
      assert.equal(dflt.items.length, 10);
      assert.deepEqual(errorsIn(client), []);
    });

    test('subscribe filters by category and price', async () => {
      const { client } = await connectHello(server, enc, { user: uniqueId('u') });
      const category = server.items[server.items.length - 1].category;
      const matching = server.items.filter((it) => it.category === category && it.price >= 1 && it.price <= 10);
      assert.ok(matching.length > 0, 'fixture has no item in the filter');
      const recs = await client.subscribe('filtered', { k: 100, category, price_min: 1, price_max: 10 });
      assert.ok(recs.items.length >= 1 && recs.items.length <= matching.length, `${recs.items.length} items for ${matching.length} matching`);
      for (const it of recs.items) {
        assert.equal(categoryOf(it.item), category, `${it.item} is outside category ${category}`);
        const price = server.items.find((c) => c.id === it.item).price;
        assert.ok(price >= 1 && price <= 10, `${it.item} costs ${price}, outside 1…10`);
      }
    });

    test('subscribing again to a surface replaces its parameters and sends the list again', async () => {
      const { client } = await connectHello(server, enc, { user: uniqueId('u') });
      const first = await client.subscribe('home', { k: 3 });
      assert.equal(first.items.length, 3);
      const second = await client.subscribe('home', { k: 5 });
      assert.equal(second.items.length, 5);
      assert.ok(second.version >= first.version, 'version went backwards');
    });

    test('clicks on one category raise its share of home; each is acked; pushes carry cause and took_us', async () => {
      const { client } = await connectHello(server, enc, { user: uniqueId('clicker') });
      const beforeRecs = await client.subscribe('home', { k: 10 });
      assertRecs(beforeRecs, { surface: 'home', k: 10, cause: null });

      // The category least present in the list, so a rise is possible whatever the list holds.
      const categories = [...new Set(server.items.map((it) => it.category))];
      categories.sort((a, b) => share(beforeRecs, a) - share(beforeRecs, b));
      const target = categories[0];
      const clicks = server.items.filter((it) => it.category === target).slice(0, 8);
      assert.equal(clicks.length, 8, `category ${target} has fewer than 8 items`);

      const sent = [];
      let pushes = 0;
      for (const it of clicks) {
        const { id, sentAt } = await sendEvent(client, { kind: 'click', item: it.id, surface: 'home' });
        sent.push(id);
        const pushed = await client.next((m) => m.type === 'recs' && m.cause === id, 1000).catch(() => null);
        if (pushed) {
          pushes += 1;
          assertRecs(pushed, { surface: 'home', k: 10, cause: id });
          assertTookWithin(client, pushed, sentAt);
        }
      }
      assert.ok(pushes >= 1, 'eight clicks on a new category pushed no list');
      for (const m of client.log.filter((x) => x.type === 'recs' && 'cause' in x)) {
        assert.ok(sent.includes(m.cause), `recs caused by ${m.cause}, which this connection never sent`);
      }
      const afterRecs = await client.subscribe('home', { k: 10 });
      assertRecs(afterRecs, { surface: 'home', k: 10, cause: null });
      const sb = share(beforeRecs, target);
      const sa = share(afterRecs, target);
      assert.ok(
        sa > sb,
        `share of ${target} in home did not rise: ${sb} → ${sa}; ` +
          `before ${itemIds(beforeRecs).map(categoryOf)}; after ${itemIds(afterRecs).map(categoryOf)}`,
      );
      assert.deepEqual(errorsIn(client), []);
    });

    test('a duplicate event id is acknowledged again', async () => {
      const user = uniqueId('dup');
      const { client } = await connectHello(server, enc, { user });
      const item = server.items[5].id;
      const id = uniqueId('dup-ev');
      await sendEvent(client, { id, kind: 'view', item });
      await sendEvent(client, { id, kind: 'view', item });
      // A retry from another connection of the same user (a reconnect) is acknowledged too.
      const { client: again } = await connectHello(server, enc, { user });
      await sendEvent(again, { id, kind: 'view', item });
      assert.deepEqual(errorsIn(client), []);
    });

    test('a purchased item is never recommended again', async () => {
      const user = uniqueId('buyer');
      const { client } = await connectHello(server, enc, { user });
      const home = await client.subscribe('home', { k: 10 });
      const bought = home.items[0].item;
      const { id: buyId, sentAt } = await sendEvent(client, { kind: 'purchase', item: bought });
      // The item was on the list and may not be any more, so the list changed and is pushed.
      const pushed = await client.next((m) => m.type === 'recs' && m.cause === buyId);
      assertRecs(pushed, { surface: 'home', k: 10, cause: buyId });
      assertTookWithin(client, pushed, sentAt);
      assert.ok(!itemIds(pushed).includes(bought), `purchased ${bought} is still in the pushed list`);
      const fromHere = client.log.indexOf(pushed);

      // Interest in the item's category, and even a view of the item itself, must not bring it back.
      const category = categoryOf(bought);
      const similar = server.items.filter((it) => it.category === category && it.id !== bought).slice(0, 3);
      for (const it of similar) await sendEvent(client, { kind: 'click', item: it.id });
      await sendEvent(client, { kind: 'view', item: bought });
      await sleep(300);
      const byCategory = await client.subscribe('same-cat', { k: 100, category });
      assert.ok(byCategory.items.length >= 1, `no item left in ${category}`);
      const { client: other } = await connectHello(server, enc, { user });
      const otherHome = await other.subscribe('home', { k: 100 });

      const lists = [...client.log.slice(fromHere), ...other.log].filter((m) => m.type === 'recs');
      for (const l of lists) {
        assert.ok(!itemIds(l).includes(bought), `purchased ${bought} recommended again on ${l.surface} (cause ${l.cause})`);
      }
      assert.ok(lists.includes(otherHome));
      assert.deepEqual(errorsIn(client), []);
    });

    test('a dismissed item leaves the lists at once', async () => {
      const { client } = await connectHello(server, enc, { user: uniqueId('dismisser') });
      const home = await client.subscribe('home', { k: 10 });
      const gone = home.items[3].item;
      const { id } = await sendEvent(client, { kind: 'dismiss', item: gone });
      const pushed = await client.next((m) => m.type === 'recs' && m.cause === id);
      assertRecs(pushed, { surface: 'home', k: 10, cause: id });
      assert.ok(!itemIds(pushed).includes(gone), `dismissed ${gone} still listed`);
      const again = await client.subscribe('home', { k: 100 });
      assert.ok(!itemIds(again).includes(gone), `dismissed ${gone} back on a fresh subscribe`);
    });

    test("an event on one connection pushes to the user's other connections, and to no one else", async () => {
      const user = uniqueId('twin');
      const { client: a } = await connectHello(server, enc, { user });
      const { client: b } = await connectHello(server, enc, { user });
      const { client: stranger } = await connectHello(server, enc, { user: uniqueId('stranger') });
      const aHome = await a.subscribe('home', { k: 10 });
      const bHome = await b.subscribe('home', { k: 10 });
      const bSide = await b.subscribe('side', { k: 10 });
      await stranger.subscribe('home', { k: 10 });

      // Dismissing an item that is on both of b's lists changes both, so both must be pushed.
      const target = bHome.items.map((it) => it.item).find((id) => itemIds(bSide).includes(id)) ?? bHome.items[0].item;
      const { id } = await sendEvent(a, { kind: 'dismiss', item: target });
      const onB = await b.next((m) => m.type === 'recs' && m.surface === 'home' && m.cause === id);
      assertRecs(onB, { surface: 'home', cause: id });
      assert.ok(!itemIds(onB).includes(target));
      if (itemIds(aHome).includes(target)) {
        const onA = await a.next((m) => m.type === 'recs' && m.surface === 'home' && m.cause === id);
        assertRecs(onA, { surface: 'home', cause: id });
      }
      if (itemIds(bSide).includes(target)) {
        await b.next((m) => m.type === 'recs' && m.surface === 'side' && m.cause === id);
      }
      // a never subscribed to `side`; the stranger is another user and hears nothing at all.
      await a.expectNone((m) => m.type === 'recs' && m.surface === 'side', 500);
      await stranger.expectNone(() => true, 300);
      assert.deepEqual([...errorsIn(a), ...errorsIn(b), ...errorsIn(stranger)], []);
    });

    test('a batch is acknowledged together; its invalid events get their own errors', async () => {
      const { client } = await connectHello(server, enc, { user: uniqueId('batcher') });
      const ids = [uniqueId('b'), uniqueId('b'), uniqueId('b')];
      client.send({
        type: 'events',
        events: [
          { id: ids[0], kind: 'view', item: server.items[1].id },
          { id: ids[1], kind: 'search', query: 'heart' },
          { id: ids[2], kind: 'rating', item: server.items[2].id, value: 4 },
        ],
      });
      assertAck(await client.next('ack'), ids);
      await client.expectNone('ack', 300);

      const good = [uniqueId('b'), uniqueId('b')];
      const bad = uniqueId('b');
      client.send({
        type: 'events',
        events: [
          { id: good[0], kind: 'view', item: server.items[3].id },
          { id: bad, kind: 'like', item: server.items[3].id },
          { kind: 'view', item: server.items[4].id },
          { id: good[1], kind: 'cart', item: server.items[4].id, value: 2 },
        ],
      });
      assertAck(await client.next('ack'), good);
      const withId = await client.next((m) => m.type === 'error' && m.id === bad);
      assertError(withId, 4002);
      const withoutId = await client.next((m) => m.type === 'error' && !('id' in m));
      assertError(withoutId, 4002);
      await client.expectNone((m) => m.type === 'ack' || m.type === 'error', 300);
    });

    test('unsubscribe is silent and stops pushes; an unknown surface is 4040', async () => {
      const { client } = await connectHello(server, enc, { user: uniqueId('unsub') });
      const home = await client.subscribe('home', { k: 10 });
      await client.subscribe('side', { k: 10 });
      client.send({ type: 'unsubscribe', surface: 'side' });
      await client.roundTrip();
      assert.deepEqual(client.inbox, [], 'unsubscribe was answered');

      const { id } = await sendEvent(client, { kind: 'dismiss', item: home.items[0].item });
      await client.next((m) => m.type === 'recs' && m.surface === 'home' && m.cause === id);
      await client.expectNone((m) => m.type === 'recs' && m.surface === 'side', 500);

      client.send({ type: 'unsubscribe', surface: 'side' });
      assertError(await client.nextAny(), 4040);
      client.send({ type: 'unsubscribe', surface: 'never' });
      assertError(await client.nextAny(), 4040);
      await client.roundTrip();
    });

    test('a connection holds at most 16 surfaces (4021)', async () => {
      const { client } = await connectHello(server, enc, { user: uniqueId('many') });
      for (let i = 0; i < 16; i++) await client.subscribe(`s${i}`, { k: 1 });
      client.send({ type: 'subscribe', surface: 's16', k: 1 });
      assertError(await client.nextAny(), 4021);
      // Re-subscribing to a held surface is a replacement, not a 17th.
      const again = await client.subscribe('s0', { k: 2 });
      assert.equal(again.items.length, 2);
    });

    test('ping is answered by pong, before and after hello, echoing t only when given', async () => {
      const client = await connect(server, enc);
      client.send({ type: 'ping' });
      assertPong(await client.nextAny());
      client.send({ type: 'ping', t: 12.5 });
      assertPong(await client.nextAny(), 12.5);
      await client.hello({ user: uniqueId('pinger') });
      // t is a number: it comes back as sent, fraction and all, in either encoding.
      for (const t of [1763800000000, 123456.789012, 0.1, -2.5e-7]) {
        client.send({ type: 'ping', t });
        assertPong(await client.nextAny(), t);
      }
      client.send({ type: 'ping' });
      assertPong(await client.nextAny());
    });
  });
}

describe('handshake', () => {
  test('no subprotocol offered: served JSON, with no Sec-WebSocket-Protocol in the response', async () => {
    const client = await connect(server, 'json', { protocols: [] });
    assert.equal(client.ws.protocol, '');
    assert.equal(client.handshakeHeaders['sec-websocket-protocol'], undefined);
    await client.hello({ user: uniqueId('plain') });
    await client.roundTrip();
  });

  test('an offer naming neither subprotocol is refused', async () => {
    await assert.rejects(connect(server, 'json', { protocols: ['rankcast.v2.json'] }));
    await assert.rejects(connect(server, 'json', { protocols: ['chat', 'superchat'] }));
  });
});

describe('shutdown', () => {
  test('SIGTERM sends drain, closes connections with 1001, and exits 0 within 5 s', async () => {
    const clients = [];
    for (const enc of ENCODINGS) {
      const { client } = await connectHello(server, enc, { user: uniqueId('drained') });
      await client.subscribe('home', { k: 3 });
      clients.push(client);
    }
    const stopped = server.stop(5000);
    for (const client of clients) {
      const drain = await client.next('drain', 5000);
      assert.deepEqual(Object.keys(drain).sort(), ['reason', 'reconnect_after_ms', 'type']);
      assert.equal(typeof drain.reason, 'string');
      assert.ok(Number.isInteger(drain.reconnect_after_ms) && drain.reconnect_after_ms >= 0);
      const { code } = await client.waitClose(5000);
      assert.equal(code, 1001);
    }
    const r = await stopped;
    assert.equal(r.timedOut, false, 'no exit within 5 s of SIGTERM');
    assert.equal(r.code, 0);
  });
});

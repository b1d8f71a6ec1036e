// SPDX-License-Identifier: Apache-2.0
// Live lists against the fake server, in both subprotocols: subscribe and its answer, stale
// versions dropped, handles sharing a surface, options changes, limits, and resume after a
// reconnect (every live surface subscribed again, lists delivered again).

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { ClientError } from '../src/index.js';

import { FakeServer, sleep, waitUntil } from '../test-support/fake-server.mjs';
import { ENCODINGS, closeAllClients, makeClient, nextEvent } from '../test-support/helpers.mjs';

for (const enc of ENCODINGS) {
  describe(`lists (${enc})`, { timeout: 20_000 }, () => {
    let server;
    before(async () => {
      server = await FakeServer.start();
    });
    after(async () => {
      await server.stop();
    });
    afterEach(closeAllClients);

    const setup = async (extra = {}) => {
      server.handle = null;
      const from = server.connections.length;
      const client = makeClient(server.url, enc, extra);
      await nextEvent(client, 'open');
      return { client, conn: server.connections[from], from };
    };

    test('subscribe sends the options and delivers the answer; newer lists replace it, older ones are dropped', async () => {
      const { client, conn } = await setup();
      const lists = [];
      const sub = client.subscribe('pdp', { k: 5, category: 'kitchen', priceMin: 0, priceMax: 20.5 }, (l) => lists.push(l));
      await waitUntil(() => lists.length === 1, { what: 'the first list' });
      assert.deepEqual(server.received('subscribe', conn)[0], { type: 'subscribe', surface: 'pdp', k: 5, category: 'kitchen', price_min: 0, price_max: 20.5 });
      const first = lists[0];
      assert.equal(first.surface, 'pdp');
      assert.equal('cause' in first, false);
      assert.deepEqual(Object.keys(first).sort(), ['items', 'surface', 'tookUs', 'variant', 'version']);
      assert.deepEqual(first.items[0], { item: 'i-1', score: 1, src: 'popular', why: 'Popular now' });
      conn.send(server.recs('pdp', { version: first.version + 10, cause: 'e-1' }));
      conn.send(server.recs('pdp', { version: first.version + 5, cause: 'e-0' })); // late and older
      conn.send(server.recs('pdp', { version: first.version + 10, cause: 'e-1' })); // same version again
      conn.send(server.recs('other', { version: first.version + 20 })); // a surface not held
      await waitUntil(() => lists.length >= 2);
      await sleep(30);
      assert.deepEqual(lists.map((l) => l.version), [first.version, first.version + 10, first.version + 10]);
      assert.equal(lists[1].cause, 'e-1');
      assert.equal(sub.latest, lists.at(-1));
      assert.equal(client.stats().staleListsDropped, 1);
      await client.close();
    });

    test('compact lists: deltas become whole lists; one that does not apply is reported and the surface subscribed again', async () => {
      const delta = (version, base, fields) => ({ type: 'recs_delta', surface: 'home', version, base, took_us: 5, variant: 'control', ...fields });
      const whole = delta(10, 0, {
        place: [[0, 'a'], [1, 'b']], scores_e4: [5000, -2500], r: [0, 1],
        items: { a: { name: 'A', category: 'c', price: 1.5 }, b: { name: 'B' } },
        reasons: { 0: { src: 'popular', why: 'Popular', reason: { code: 'popular' } }, 1: { src: 'trending', why: 'Trending now', reason: { code: 'trending' } } },
      });
      const { client, conn } = await setup();
      server.handle = (c, msg) => {
        if (msg.type !== 'subscribe') return false;
        c.send(whole);
        return true;
      };
      const lists = [];
      const errors = [];
      client.on('error', (e) => errors.push(e));
      client.subscribe('home', { k: 2, compact: true }, (l) => lists.push(l));
      await waitUntil(() => lists.length === 1, { what: 'the whole list' });
      assert.deepEqual(server.received('subscribe', conn)[0], { type: 'subscribe', surface: 'home', k: 2, compact: true });
      assert.deepEqual(lists[0].items, [
        { item: 'a', score: 0.5, src: 'popular', why: 'Popular', reason: { code: 'popular' }, name: 'A', category: 'c', price: 1.5 },
        { item: 'b', score: 0.25, src: 'trending', why: 'Trending now', reason: { code: 'trending' }, name: 'B' },
      ]);
      // b moves up, a new item c comes in after it, a leaves: details and reasons kept.
      conn.send(delta(11, 10, { remove: ['a'], place: [[1, 'c']], scores_e4: [3000, -2000], r: [1, 0], items: { c: { name: 'C' } }, cause: 'e-1' }));
      await waitUntil(() => lists.length === 2);
      assert.deepEqual(lists[1].items.map((it) => [it.item, it.score, it.why, it.name]), [['b', 0.3, 'Trending now', 'B'], ['c', 0.1, 'Popular', 'C']]);
      assert.equal(lists[1].cause, 'e-1');
      // A base the client does not hold: reported, never delivered, and the surface subscribed again.
      conn.send(delta(13, 12, { scores_e4: [1, 2], r: [0, 0] }));
      await waitUntil(() => server.received('subscribe', conn).length === 2, { what: 'the subscription sent again' });
      assert.equal(errors.length, 1);
      assert.equal(errors[0].code, 'protocol');
      await waitUntil(() => lists.length === 3);
      assert.equal(lists[2].version, 10);
      // After a reconnect, the tables start afresh: a delta on the old base does not apply.
      conn.terminate();
      await nextEvent(client, 'open', { timeoutMs: 5000 });
      const again = server.connections.at(-1);
      await waitUntil(() => lists.length === 4);
      again.send(delta(14, 11, { scores_e4: [1, 2], r: [0, 1] }));
      await waitUntil(() => errors.length === 2, { what: 'the error of the stale base' });
      await client.close();
      server.handle = null;
    });

    test('handles share a surface: a second one gets the current list, unsubscribe goes out with the last', async () => {
      const { client, conn } = await setup();
      const a = [];
      const b = [];
      const subA = client.subscribe('home', (l) => a.push(l));
      await waitUntil(() => a.length === 1);
      const subB = client.subscribe('home', {}, (l) => b.push(l));
      assert.equal(b.length, 0, 'not called inside subscribe()');
      await waitUntil(() => b.length === 1, { what: 'the current list for the second handle' });
      assert.equal(b[0], a[0]);
      assert.equal(server.received('subscribe', conn).length, 1, 'one wire subscription per surface');
      subA.unsubscribe();
      subA.unsubscribe();
      await sleep(20);
      assert.equal(server.received('unsubscribe', conn).length, 0);
      conn.send(server.recs('home'));
      await waitUntil(() => b.length === 2);
      assert.equal(a.length, 1, 'an unsubscribed handle is not called');
      assert.equal(subA.latest, null);
      subB.unsubscribe();
      await server.waitFor((m, c) => m.type === 'unsubscribe' && c === conn);
      assert.deepEqual(server.received('unsubscribe', conn), [{ type: 'unsubscribe', surface: 'home' }]);
      assert.equal(client.stats().subscriptions, 0);
      await client.close();
    });

    test('new options for a held surface subscribe again and start its versions afresh', async () => {
      const { client, conn } = await setup();
      const lists = [];
      client.subscribe('home', { k: 3 }, (l) => lists.push(l));
      await waitUntil(() => lists.length === 1);
      conn.send(server.recs('home', { version: 999_999 }));
      await waitUntil(() => lists.length === 2);
      client.subscribe('home', { k: 5 }, () => {});
      await waitUntil(() => lists.length === 3, { what: 'the list for the new options' });
      assert.ok(lists[2].version < 999_999, 'a lower version of the new list is not dropped as stale');
      assert.deepEqual(server.received('subscribe', conn).map((m) => m.k), [3, 5]);
      await client.close();
    });

    test('bad options throw invalid_argument; more surfaces than max_subscriptions throw limit_exceeded', async () => {
      server.limits = { ...server.limits, max_subscriptions: 2, max_k: 20 };
      const { client } = await setup();
      const noop = () => {};
      assert.throws(() => client.subscribe('Home', noop), (e) => e instanceof ClientError && e.code === 'invalid_argument');
      assert.throws(() => client.subscribe('home', { k: 0 }, noop), (e) => e.code === 'invalid_argument');
      assert.throws(() => client.subscribe('home', { k: 50 }, noop), (e) => e.code === 'limit_exceeded');
      assert.throws(() => client.subscribe('home', { size: 5 }, noop), (e) => e.code === 'invalid_argument');
      assert.throws(() => client.subscribe('home', { k: 5 }), (e) => e.code === 'invalid_argument');
      client.subscribe('a', noop);
      client.subscribe('b', noop);
      assert.throws(() => client.subscribe('c', noop), (e) => e.code === 'limit_exceeded');
      client.subscribe('a', noop); // a held surface is no new one
      server.limits = { ...server.limits, max_subscriptions: 16, max_k: 100 };
      await client.close();
    });

    test('resume: after a reconnect every live surface is subscribed again (before queued events) and lists come back', async () => {
      const { client, conn } = await setup({ reconnect: { baseMs: 50, capMs: 50 } });
      const home = [];
      const pdp = [];
      client.subscribe('home', { k: 4 }, (l) => home.push(l));
      client.subscribe('pdp', { k: 2, category: 'kitchen' }, (l) => pdp.push(l));
      const gone = client.subscribe('gone', () => {});
      await waitUntil(() => home.length === 1 && pdp.length === 1);
      gone.unsubscribe();
      // The next node's versions are lower (another clock): its answers must still count.
      const savedVersion = server.version;
      server.version = 0;
      conn.terminate();
      await nextEvent(client, 'reconnecting');
      const tracked = client.track({ kind: 'view', item: 'i-1' });
      await nextEvent(client, 'open');
      await tracked;
      await waitUntil(() => home.length === 2 && pdp.length === 2, { what: 'lists after resume' });
      const next = server.connections[conn.index + 1];
      const sent = server.log.filter((e) => e.conn === next).map((e) => e.msg);
      assert.deepEqual(sent.map((m) => m.type), ['hello', 'subscribe', 'subscribe', 'event']);
      assert.deepEqual(sent[1], { type: 'subscribe', surface: 'home', k: 4 });
      assert.deepEqual(sent[2], { type: 'subscribe', surface: 'pdp', k: 2, category: 'kitchen' });
      assert.ok(home[1].version < home[0].version, 'versions start afresh per connection');
      server.version = savedVersion;
      await client.close();
    });

    test('subscribing while disconnected sends on the next welcome', async () => {
      const client = makeClient(server.url, enc, { autoConnect: false });
      const lists = [];
      client.subscribe('home', (l) => lists.push(l));
      const from = server.connections.length;
      client.connect();
      await waitUntil(() => lists.length === 1);
      assert.equal(server.received('subscribe', server.connections[from]).length, 1);
      await client.close();
    });

    test('an exception in onRecs does not stop other handles or the client', async () => {
      const { client } = await setup();
      const saved = globalThis.reportError;
      const reported = [];
      globalThis.reportError = (e) => reported.push(e.message);
      try {
        const got = [];
        client.subscribe('home', () => {
          throw new Error('render failed');
        });
        client.subscribe('home', (l) => got.push(l));
        await waitUntil(() => got.length === 1);
        assert.deepEqual(reported, ['render failed']);
        assert.equal(client.state, 'open');
      } finally {
        globalThis.reportError = saved;
      }
      await client.close();
    });
  });
}

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

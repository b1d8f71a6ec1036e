// SPDX-License-Identifier: Apache-2.0
// Event delivery against the fake server, in both subprotocols: batching, welcome limits,
// drops mid-batch, duplicate acks, final and retryable errors, a slow server, the offline
// queue (bounded, in order, persisted), flush(), and the impression/click helpers.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { encode } from '@msgpack/msgpack';

import { ClientError, ServerError } from '../src/index.js';

import { FakeServer, sleep, waitUntil } from '../test-support/fake-server.mjs';
import { ENCODINGS, closeAllClients, MemoryStorage, makeClient, nextEvent, recordEvents } from '../test-support/helpers.mjs';

/** Event messages (event or events) the server received on `conn`, as arrays of ids. */
const batchesOn = (server, conn) =>
  server.log.filter((e) => e.conn === conn && (e.msg.type === 'event' || e.msg.type === 'events')).map((e) => (e.msg.type === 'event' ? [e.msg.id] : e.msg.events.map((x) => x.id)));

const view = (n) => ({ kind: 'view', item: `item-${n}` });

for (const enc of ENCODINGS) {
  describe(`delivery (${enc})`, { timeout: 20_000 }, () => {
    let server;
    before(async () => {
      server = await FakeServer.start();
    });
    after(async () => {
      await server.stop();
    });
    afterEach(closeAllClients);

    const setup = async (extra = {}, handle = null) => {
      server.handle = handle;
      server.limits = { max_message_bytes: 65536, max_batch: 100, max_subscriptions: 16, max_k: 100, events_per_sec: 200, events_burst: 400 };
      const from = server.connections.length;
      const client = makeClient(server.url, enc, extra);
      await nextEvent(client, 'open');
      return { client, conn: server.connections[from], from };
    };

    test('one event goes out as `event`; a burst in the batch window as one `events`; acks resolve track()', async () => {
      const { client, conn } = await setup({ batchWindowMs: 20 });
      const single = client.track({ kind: 'click', item: 'i-1', surface: 'home', tsMs: 1763800000000 });
      assert.match(single.id, /^[0-9a-f-]{36}$/);
      assert.equal(await single, single.id);
      const [msg] = server.received('event', conn);
      assert.deepEqual(msg, { type: 'event', id: single.id, kind: 'click', item: 'i-1', surface: 'home', ts_ms: 1763800000000 });
      const burst = [1, 2, 3, 4].map((n) => client.track(view(n)));
      assert.deepEqual(await Promise.all(burst), burst.map((p) => p.id));
      const batches = server.received('events', conn);
      assert.equal(batches.length, 1);
      assert.deepEqual(batches[0].events.map((e) => e.id), burst.map((p) => p.id));
      assert.ok(batches[0].events.every((e) => !('type' in e) && Number.isInteger(e.ts_ms)), 'batched events carry no type, and a ts_ms');
      assert.equal(client.stats().queued, 0);
      await client.close();
    });

    // The batch window is long here (10 s): only immediateKinds can make a click go out now.
    test('immediateKinds: a click goes out at once and takes waiting impressions along; impressions alone wait', async () => {
      const { client, conn } = await setup({ batchWindowMs: 10_000, immediateKinds: ['view', 'click', 'cart'] });
      const impressions = [1, 2].map((n) => client.track({ kind: 'impression', item: `item-${n}`, surface: 'home' }));
      await sleep(150);
      assert.equal(batchesOn(server, conn).length, 0, 'impressions wait for the batch window');
      const click = client.track({ kind: 'click', item: 'item-3', surface: 'home' });
      await waitUntil(() => batchesOn(server, conn).length === 1, { timeoutMs: 1000, what: 'the click sent at once' });
      assert.deepEqual(batchesOn(server, conn)[0], [...impressions.map((p) => p.id), click.id], 'one message, in order');
      await Promise.all([click, ...impressions]);
      const lone = client.track({ kind: 'impression', item: 'item-4', surface: 'home' });
      await sleep(150);
      assert.equal(batchesOn(server, conn).length, 1, 'a lone impression still waits');
      const view = client.track({ kind: 'view', item: 'item-5' });
      await waitUntil(() => batchesOn(server, conn).length === 2, { timeoutMs: 1000, what: 'the view sent at once' });
      await Promise.all([lone, view]);
      await client.close();
    });

    test('batches respect welcome.limits max_batch and events_per_sec', async () => {
      server.limits = { max_message_bytes: 65536, max_batch: 3, max_subscriptions: 16, max_k: 100, events_per_sec: 50, events_burst: 5 };
      server.handle = null;
      const from = server.connections.length;
      const client = makeClient(server.url, enc);
      const welcome = await nextEvent(client, 'open');
      assert.equal(welcome.limits.maxBatch, 3);
      const conn = server.connections[from];
      const t0 = performance.now();
      const ps = Array.from({ length: 20 }, (_, n) => client.track(view(n)));
      await Promise.all(ps);
      const elapsed = performance.now() - t0;
      const batches = batchesOn(server, conn);
      assert.ok(batches.every((b) => b.length <= 3), `batch sizes ${batches.map((b) => b.length)}`);
      assert.deepEqual(batches.flat(), ps.map((p) => p.id), 'every event once, in order');
      // 5 at once (the burst), then 15 more at 50/s: at least ~300 ms.
      assert.ok(elapsed >= 270, `20 events at 50/s with burst 5 took only ${elapsed.toFixed(0)} ms`);
      await client.close();
    });

    test('a batch larger than max_message_bytes is split', async () => {
      server.limits = { max_message_bytes: 400, max_batch: 100, max_subscriptions: 16, max_k: 100, events_per_sec: 200, events_burst: 400 };
      const from = server.connections.length;
      const client = makeClient(server.url, enc);
      await nextEvent(client, 'open');
      const ps = Array.from({ length: 12 }, (_, n) => client.track({ kind: 'search', query: `query number ${n} ${'x'.repeat(40)}` }));
      await Promise.all(ps);
      const conn = server.connections[from];
      const sizes = server.log
        .filter((e) => e.conn === conn && (e.msg.type === 'events' || e.msg.type === 'event'))
        .map((e) => (enc === 'json' ? Buffer.byteLength(JSON.stringify(e.msg)) : encode(e.msg).length));
      assert.ok(batchesOn(server, conn).length > 1, 'split into several messages');
      assert.ok(sizes.every((n) => n <= 400), `sizes ${sizes}`);
      assert.deepEqual(batchesOn(server, conn).flat(), ps.map((p) => p.id));
      await client.close();
    });

    test('a drop in the middle of a batch: unacked events are sent again, same ids, in order, after reconnect', async () => {
      let dropped = false;
      const { client, conn } = await setup({ batchWindowMs: 10 }, (c, msg) => {
        if (msg.type !== 'events' || dropped) return false;
        dropped = true;
        c.send({ type: 'ack', ids: [msg.events[0].id] }); // the first made it
        c.terminate(); // and the connection dies before the rest are acked
        return true;
      });
      const ps = Array.from({ length: 5 }, (_, n) => client.track(view(n)));
      const ids = await Promise.all(ps);
      assert.deepEqual(ids, ps.map((p) => p.id));
      const next = server.connections[conn.index + 1];
      assert.deepEqual(batchesOn(server, conn).flat(), ids);
      assert.deepEqual(batchesOn(server, next).flat(), ids.slice(1), 'only the unacked ones, in order');
      assert.equal(client.stats().resent, 4);
      await client.close();
    });

    test('duplicate and unknown acks are harmless', async () => {
      const { client } = await setup({}, (c, msg) => {
        if (msg.type !== 'event') return false;
        c.send({ type: 'ack', ids: [msg.id, 'never-sent'] });
        c.send({ type: 'ack', ids: [msg.id] });
        c.send({ type: 'ack', ids: [msg.id, msg.id] });
        return true;
      });
      const errors = recordEvents(client, ['error']);
      const p = client.track(view(1));
      assert.equal(await p, p.id);
      await sleep(20);
      assert.equal(errors.length, 0);
      assert.equal(client.stats().acked, 1);
      assert.equal(client.stats().queued, 0);
      await client.close();
    });

    test('a final error rejects that event with a ServerError carrying the code; the rest of the batch is acked', async () => {
      const { client } = await setup({ batchWindowMs: 10 }, (c, msg) => {
        if (msg.type !== 'events') return false;
        const [bad, ...good] = msg.events;
        c.send({ type: 'error', code: 4012, name: 'unknown_item', message: `item ${bad.item} is not in the catalog`, id: bad.id, fatal: false });
        c.send({ type: 'ack', ids: good.map((e) => e.id) });
        return true;
      });
      const errors = recordEvents(client, ['error']);
      const bad = client.track({ kind: 'view', item: 'nope' });
      const good = [client.track(view(2)), client.track(view(3))];
      await assert.rejects(bad, (e) => {
        assert.ok(e instanceof ServerError);
        assert.equal(e.code, 4012);
        assert.equal(e.codeName, 'unknown_item');
        assert.equal(e.eventId, bad.id);
        assert.equal(e.retryable, false);
        assert.match(e.serverMessage, /not in the catalog/);
        return true;
      });
      await Promise.all(good);
      assert.equal(errors.length, 1, 'the error is also on the error event');
      assert.equal(client.stats().queued, 0);
      await client.close();
    });

    for (const code of [4020, 4500, 4503]) {
      test(`retryable error ${code}: the event is sent again with backoff until acked`, async () => {
        let refusals = 0;
        const { client, conn } = await setup({ retry: { baseMs: 20, capMs: 40 } }, (c, msg) => {
          if (msg.type !== 'event') return false;
          if (refusals < 3) {
            refusals++;
            c.send({ type: 'error', code, name: 'x', message: 'try later', id: msg.id, fatal: false });
          } else {
            c.send({ type: 'ack', ids: [msg.id] });
          }
          return true;
        });
        const p = client.track(view(1));
        assert.equal(await p, p.id);
        const sends = server.log.filter((e) => e.conn === conn && e.msg.type === 'event');
        assert.equal(sends.length, 4);
        assert.ok(sends.every((e) => e.msg.id === p.id));
        assert.equal(client.stats().retried, 3);
        await client.close();
      });
    }

    test('slow server: an event without ack within ackTimeoutMs is sent again, and resolves once', async () => {
      const { client, conn } = await setup({ ackTimeoutMs: 80 }, (c, msg) => {
        if (msg.type !== 'event') return false;
        setTimeout(() => c.send({ type: 'ack', ids: [msg.id] }), 200);
        return true;
      });
      let settled = 0;
      const p = client.track(view(1));
      p.then(() => settled++);
      await p;
      await sleep(250); // the ack of the second copy arrives too
      assert.equal(settled, 1);
      const copies = server.received('event', conn).filter((m) => m.id === p.id);
      assert.ok(copies.length >= 2, `sent ${copies.length} times`);
      assert.equal(client.stats().queued, 0);
      assert.equal(client.state, 'open');
      await client.close();
    });

    test('offline: events tracked while the server is down go out in order after reconnect', async () => {
      const local = await FakeServer.start();
      const client = makeClient(local.url, enc, { reconnect: { baseMs: 20, capMs: 50 } });
      await nextEvent(client, 'open');
      const localPort = local.port;
      await local.stop();
      await nextEvent(client, 'reconnecting');
      const ps = Array.from({ length: 6 }, (_, n) => client.track(view(n)));
      assert.equal(client.stats().queued, 6);
      await sleep(100);
      const revived = await FakeServer.start({ port: localPort });
      await Promise.all(ps);
      assert.deepEqual(revived.eventIds(), ps.map((p) => p.id));
      await client.close();
      await revived.stop();
    });

    test('the offline queue is bounded: the oldest events are dropped with queue_overflow', async () => {
      server.handle = null;
      const client = makeClient(server.url, enc, { autoConnect: false, maxQueue: 3 });
      const errors = recordEvents(client, ['error']);
      const ps = Array.from({ length: 5 }, (_, n) => client.track(view(n)));
      for (const p of ps.slice(0, 2)) await assert.rejects(p, (e) => e instanceof ClientError && e.code === 'queue_overflow');
      assert.equal(errors.length, 2);
      client.connect();
      const ids = await Promise.all(ps.slice(2));
      assert.deepEqual(ids, ps.slice(2).map((p) => p.id));
      await client.close();
    });

    test('with a Storage the queue outlives the client: the next client sends what was left', async () => {
      const storage = new MemoryStorage();
      const first = makeClient(server.url, enc, { autoConnect: false, storage, storageKey: 'q-test' });
      const ps = [first.track(view(1)), first.track({ kind: 'search', query: 'mug' })];
      await sleep(0);
      assert.equal(JSON.parse(storage.getItem('q-test')).length, 2);
      await first.close();
      for (const p of ps) await assert.rejects(p, (e) => e instanceof ClientError && e.code === 'closed');
      const from = server.connections.length;
      const second = makeClient(server.url, enc, { storage, storageKey: 'q-test' });
      assert.equal(second.stats().queued, 2);
      await nextEvent(second, 'open');
      await second.flush(2000);
      assert.deepEqual(batchesOn(server, server.connections[from]).flat(), ps.map((p) => p.id));
      await sleep(0);
      assert.equal(storage.getItem('q-test'), null);
      await second.close();
    });

    test('flush() resolves once all is acked, and rejects with timeout when acks do not come', async () => {
      let ack = true;
      const { client } = await setup({ batchWindowMs: 1000 }, (c, msg) => {
        if (msg.type !== 'event' && msg.type !== 'events') return false;
        if (ack) c.send({ type: 'ack', ids: msg.type === 'event' ? [msg.id] : msg.events.map((e) => e.id) });
        return true;
      });
      const t0 = performance.now();
      client.track(view(1));
      client.track(view(2));
      await client.flush();
      assert.ok(performance.now() - t0 < 500, 'flush() skips the batch window');
      ack = false;
      client.track(view(3));
      await assert.rejects(client.flush(50), (e) => e instanceof ClientError && e.code === 'timeout');
      assert.equal(client.stats().timers > 0, true);
      await client.close();
    });

    test('invalid events reject at once with invalid_argument and are never sent', async () => {
      const { client, conn } = await setup();
      const errors = recordEvents(client, ['error']);
      await assert.rejects(client.track({ kind: 'rating', item: 'i-1', value: 7 }), (e) => e instanceof ClientError && e.code === 'invalid_argument');
      await assert.rejects(client.track({ kind: 'click' }), (e) => e.code === 'invalid_argument');
      await assert.rejects(client.track(null), (e) => e.code === 'invalid_argument');
      await sleep(20);
      assert.equal(server.received('event', conn).length, 0);
      assert.equal(errors.length, 3);
      await client.close();
    });

    test('a fire-and-forget track() that fails is no unhandled rejection', async () => {
      const unhandled = [];
      const onUnhandled = (reason) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      const client = makeClient(server.url, enc, { autoConnect: false });
      client.track(view(1));
      client.track({ kind: 'nope' });
      await client.close();
      await sleep(20);
      process.off('unhandledRejection', onUnhandled);
      assert.deepEqual(unhandled, []);
    });

    test('impression and click helpers report on a pushed list, impressions once per version', async () => {
      const { client, conn } = await setup();
      const sub = client.subscribe('home', { k: 3 }, () => {});
      await waitUntil(() => sub.latest, { what: 'a list' });
      const list = sub.latest;
      const ids = await client.trackImpressions(list);
      assert.equal(ids.length, 3);
      assert.deepEqual(await client.trackImpressions(list), [], 'already reported for this version');
      await client.trackClick(list, list.items[1]);
      const events = server.log.filter((e) => e.conn === conn && (e.msg.type === 'events' || e.msg.type === 'event')).flatMap((e) => (e.msg.type === 'event' ? [e.msg] : e.msg.events));
      const impressions = events.filter((e) => e.kind === 'impression');
      assert.deepEqual(impressions.map((e) => e.item), list.items.map((it) => it.item));
      assert.ok(impressions.every((e) => e.surface === 'home'));
      const click = events.find((e) => e.kind === 'click');
      assert.deepEqual([click.item, click.surface], [list.items[1].item, 'home']);
      const newer = nextEvent(client, 'recs');
      conn.send(server.recs('home', { items: ['i-1', 'i-9'] }));
      const list2 = await newer;
      assert.equal((await client.trackImpressions(list2, ['i-9'])).length, 1, 'a new version counts again');
      assert.throws(() => client.trackClick({ nope: true }, 'x'), (e) => e.code === 'invalid_argument');
      await client.close();
    });
  });
}

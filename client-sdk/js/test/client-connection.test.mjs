// SPDX-License-Identifier: Apache-2.0
// The connection state machine against the fake server, in both subprotocols: hello and
// welcome, state events, token provider refresh, fatal closes, drain, keepalive, handshake
// timeout, forced reconnect, close(), and messages the client cannot read.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { ClientError, ServerError } from '../src/index.js';

import { FakeServer, sleep, waitUntil } from '../test-support/fake-server.mjs';
import { ENCODINGS, closeAllClients, makeClient, nextEvent, recordEvents } from '../test-support/helpers.mjs';

for (const enc of ENCODINGS) {
  describe(`connection (${enc})`, { timeout: 20_000 }, () => {
    let server;
    before(async () => {
      server = await FakeServer.start();
    });
    after(async () => {
      await server.stop();
    });
    afterEach(closeAllClients);

    /** A fresh handler and a fresh client per test; the client is closed by the test. */
    const setup = (extra = {}, handle = null) => {
      server.handle = handle;
      const from = server.connections.length;
      const client = makeClient(server.url, enc, extra);
      return { client, from };
    };

    test('says hello with its context, gets welcome, and reports connecting → open', async () => {
      const { client, from } = setup({ user: 'u-hello', device: 'tablet', locale: 'en-GB', tzOffsetMin: 60, token: 'tok-1', consent: false });
      const seen = recordEvents(client, ['state', 'connecting', 'open']);
      const welcome = await nextEvent(client, 'open');
      const conn = server.connections[from];
      assert.equal(conn.ws.protocol, `rankcast.v1.${enc}`);
      assert.deepEqual(conn.hello, { type: 'hello', v: 1, token: 'tok-1', user: 'u-hello', device: 'tablet', locale: 'en-GB', tz_offset_min: 60, consent: false });
      assert.equal(welcome.user, 'u-hello');
      assert.equal(welcome.limits.maxBatch, 100);
      assert.equal(client.state, 'open');
      assert.equal(client.user, 'u-hello');
      assert.deepEqual(
        seen.map(([type, v]) => (type === 'state' ? `state:${v.previous}->${v.state}` : type)),
        ['state:closed->connecting', 'connecting', 'state:connecting->open', 'open'],
      );
      assert.equal(server.frameKindErrors, 0, `every frame was ${enc === 'msgpack' ? 'binary' : 'text'}`);
      await client.close();
      assert.equal(client.state, 'closed');
    });

    test('without a user, the server-assigned user is kept across reconnects; tz_offset_min is detected', async () => {
      const { client, from } = setup({ user: undefined });
      const first = await nextEvent(client, 'open');
      assert.equal(server.connections[from].hello.user, undefined);
      assert.equal(server.connections[from].hello.tz_offset_min, -new Date().getTimezoneOffset() || 0);
      assert.match(first.user, /^anon-/);
      server.connections[from].close(1000);
      await nextEvent(client, 'open');
      assert.equal(server.connections[from + 1].hello.user, first.user);
      await client.close();
    });

    test('4013: a refused anonymous id is forgotten; the client comes back at once without it and keeps the new one', async () => {
      const { client, from } = setup({ user: 'anon-made-up', reconnect: { baseMs: 60_000, capMs: 60_000 } }, (conn, msg) => {
        if (msg.type !== 'hello' || msg.user !== 'anon-made-up') return false;
        conn.send({ type: 'error', code: 4013, name: 'anonymous_id_refused', message: 'not issued here', fatal: true });
        conn.close(4013, 'anonymous_id_refused');
        return true;
      });
      const errors = recordEvents(client, ['error']);
      // The reconnect does not wait out the (one minute) backoff.
      const welcome = await nextEvent(client, 'open');
      assert.equal(server.connections[from].hello.user, 'anon-made-up');
      assert.equal(server.connections[from + 1].hello.user, undefined);
      assert.equal(welcome.user, `anon-${from + 1}`);
      assert.equal(client.user, welcome.user);
      assert.ok(errors.some(([, e]) => e instanceof ServerError && e.code === 4013 && e.codeName === 'anonymous_id_refused'));
      // The issued id, not the refused one, is what the next reconnect presents.
      client.reconnect();
      await nextEvent(client, 'open');
      assert.equal(server.connections[from + 2].hello.user, welcome.user);
      await client.close();
    });

    test('the token provider is asked before every attempt; a fresh token goes into each hello', async () => {
      const asked = [];
      let n = 0;
      const { client, from } = setup({
        tokenProvider: async (request) => {
          asked.push(request);
          await sleep(5);
          n += 1;
          return `tok-${n}`;
        },
      });
      await nextEvent(client, 'open');
      assert.equal(server.connections[from].hello.token, 'tok-1');
      server.connections[from].close(1000);
      await nextEvent(client, 'open');
      assert.equal(server.connections[from + 1].hello.token, 'tok-2');
      assert.deepEqual(asked.map((r) => r.reason), ['initial', 'reconnect']);
      await client.close();
    });

    test('a token provider that throws is retried with backoff and reported', async () => {
      let calls = 0;
      const { client } = setup({
        tokenProvider: () => {
          calls += 1;
          if (calls < 3) throw new Error('auth service down');
          return 'tok-ok';
        },
      });
      const errors = recordEvents(client, ['error']);
      await nextEvent(client, 'open');
      assert.equal(calls, 3);
      assert.equal(errors.length, 2);
      assert.ok(errors.every(([, e]) => e instanceof ClientError && e.code === 'token'));
      await client.close();
    });

    test('4010 with a static token stops the client with a ServerError', async () => {
      const { client } = setup({ token: 'expired' }, (conn, msg) => {
        if (msg.type !== 'hello') return false;
        conn.send({ type: 'error', code: 4010, name: 'unauthorized', message: 'token expired', fatal: true });
        conn.close(4010, 'unauthorized');
        return true;
      });
      const closed = await nextEvent(client, 'closed');
      assert.equal(closed.code, 4010);
      assert.ok(closed.error instanceof ServerError);
      assert.equal(closed.error.code, 4010);
      assert.equal(closed.error.codeName, 'unauthorized');
      assert.equal(client.state, 'closed');
      assert.deepEqual(client.stats().timers, 0);
      const p = client.track({ kind: 'view', item: 'i1' });
      await assert.rejects(p, (e) => e instanceof ClientError && e.code === 'closed');
      await client.close();
    });

    test('4010 with a token provider reconnects and asks for a token with reason "unauthorized"', async () => {
      const reasons = [];
      const { client, from } = setup(
        { tokenProvider: ({ reason }) => (reasons.push(reason), `tok-${reasons.length}`) },
        (conn, msg) => {
          if (msg.type !== 'hello' || msg.token !== 'tok-1') return false;
          conn.send({ type: 'error', code: 4010, name: 'unauthorized', message: 'token expired', fatal: true });
          conn.close(4010, 'unauthorized');
          return true;
        },
      );
      const reconnecting = await nextEvent(client, 'reconnecting');
      assert.equal(reconnecting.code, 4010);
      assert.equal(reconnecting.error.code, 4010);
      await nextEvent(client, 'open');
      assert.deepEqual(reasons, ['initial', 'unauthorized']);
      assert.equal(server.connections.at(-1).hello.token, 'tok-2');
      assert.ok(server.connections.length >= from + 2);
      await client.close();
    });

    test('4006 (unsupported version) stops the client for good', async () => {
      const { client } = setup({}, (conn, msg) => {
        if (msg.type !== 'hello') return false;
        conn.close(4006, 'unsupported version');
        return true;
      });
      const closed = await nextEvent(client, 'closed');
      assert.equal(closed.error.code, 4006);
      await sleep(50);
      assert.equal(client.state, 'closed');
      await client.close();
    });

    test('other closes (1000, 1006, 4008, 4050) reconnect with backoff and report the reason', async () => {
      const { client } = setup();
      await nextEvent(client, 'open');
      for (const code of [1000, 1006, 4008, 4050]) {
        const conn = server.connections.at(-1);
        const reconnecting = nextEvent(client, 'reconnecting');
        if (code === 1006) conn.terminate();
        else conn.close(code);
        const info = await reconnecting;
        assert.equal(info.reason, 'close');
        assert.equal(info.code, code);
        assert.ok(info.delayMs >= 0 && info.delayMs <= 20, `delay ${info.delayMs} within the cap`);
        if (code >= 4000) assert.equal(info.error.code, code);
        await nextEvent(client, 'open');
      }
      await client.close();
    });

    test('drain: reconnects after reconnect_after_ms plus jitter, not before', async () => {
      const { client, from } = setup({ drainJitterMs: 40 });
      await nextEvent(client, 'open');
      const conn = server.connections[from];
      const drainEvent = nextEvent(client, 'drain');
      const t0 = performance.now();
      conn.send({ type: 'drain', reason: 'shutdown', reconnect_after_ms: 200 });
      setTimeout(() => conn.close(1001, 'going away'), 20);
      assert.deepEqual(await drainEvent, { reason: 'shutdown', reconnectAfterMs: 200 });
      const reopened = nextEvent(client, 'open');
      const reconnecting = await nextEvent(client, 'reconnecting');
      assert.equal(reconnecting.code, 1001);
      // The delay is what is left of reconnect_after_ms plus jitter when the close is handled,
      // so it never exceeds 240 ms, and with the time since the drain was sent it reaches at
      // least 200 ms however late a loaded machine delivers the close.
      const sinceDrain = performance.now() - t0;
      assert.ok(reconnecting.delayMs <= 240, `delay ${reconnecting.delayMs}`);
      assert.ok(reconnecting.delayMs + sinceDrain >= 200, `delay ${reconnecting.delayMs} after ${sinceDrain.toFixed(0)} ms`);
      await server.waitForConnections(from + 2);
      const waited = performance.now() - t0;
      assert.ok(waited >= 195, `reconnected after ${waited.toFixed(0)} ms, before reconnect_after_ms`);
      assert.ok(waited < 600, `reconnected after ${waited.toFixed(0)} ms`);
      await reopened;
      await client.close();
    });

    test('drain without a close: the client leaves by itself at the deadline', async () => {
      const { client, from } = setup({ drainJitterMs: 0 });
      await nextEvent(client, 'open');
      const t0 = performance.now();
      server.connections[from].send({ type: 'drain', reason: 'rebalance', reconnect_after_ms: 100 });
      const reconnecting = await nextEvent(client, 'reconnecting');
      assert.equal(reconnecting.reason, 'drain');
      assert.equal(reconnecting.delayMs, 0);
      assert.ok(performance.now() - t0 >= 95);
      await nextEvent(client, 'open');
      const old = await server.connections[from].closed;
      assert.equal(old.code, 1000, 'the client closed the drained connection itself');
      await client.close();
    });

    test('keepalive: pings carry t; a server that stops answering is dropped', async () => {
      const { client, from } = setup({ pingIntervalMs: 30, pongTimeoutMs: 60 }, (conn, msg) => msg.type === 'ping' && conn.index === from + 1);
      await nextEvent(client, 'open');
      await server.waitFor((m, c) => m.type === 'ping' && c.index === from);
      const ping = server.received('ping', server.connections[from])[0];
      assert.equal(typeof ping.t, 'number');
      await waitUntil(() => client.stats().rttMs !== null, { what: 'rtt' });
      server.connections[from].close(1000);
      await nextEvent(client, 'open');
      const reconnecting = await nextEvent(client, 'reconnecting', { timeoutMs: 2000 });
      assert.equal(reconnecting.reason, 'keepalive');
      assert.equal(reconnecting.error.code, 'connection');
      await nextEvent(client, 'open');
      await client.close();
    });

    test('handshake timeout: no welcome means a new attempt', async () => {
      const { client, from } = setup({ connectTimeoutMs: 80 }, (conn, msg) => msg.type === 'hello' && conn.index === from);
      const reconnecting = await nextEvent(client, 'reconnecting');
      assert.equal(reconnecting.reason, 'timeout');
      await nextEvent(client, 'open');
      await client.close();
    });

    test('a non-fatal error before welcome abandons the attempt', async () => {
      const { client, from } = setup({}, (conn, msg) => {
        if (msg.type !== 'hello' || conn.index !== from) return false;
        conn.send({ type: 'error', code: 4002, name: 'invalid_field', message: 'bad', fatal: false });
        return true;
      });
      const reconnecting = await nextEvent(client, 'reconnecting');
      assert.equal(reconnecting.error.code, 4002);
      await nextEvent(client, 'open');
      await client.close();
    });

    test('reconnect() drops the connection and connects again at once', async () => {
      const { client, from } = setup({ reconnect: { baseMs: 10_000, capMs: 10_000 } });
      await nextEvent(client, 'open');
      const t0 = performance.now();
      client.reconnect();
      assert.equal(client.state, 'reconnecting');
      await nextEvent(client, 'open');
      assert.ok(performance.now() - t0 < 1000, 'no backoff');
      assert.equal((await server.connections[from].closed).code, 1000);
      await client.close();
    });

    test('an unreadable message after welcome is reported and skipped; the connection stays', async () => {
      const { client, from } = setup();
      await nextEvent(client, 'open');
      const conn = server.connections[from];
      const error = nextEvent(client, 'error');
      if (enc === 'msgpack') conn.ws.send('{"type":"pong"}');
      else conn.ws.send(Buffer.from([0x80]), { binary: true });
      const err = await error;
      assert.ok(err instanceof ClientError && err.code === 'protocol');
      const recsError = nextEvent(client, 'error');
      conn.send({ type: 'recs', surface: 'home', version: 'x', items: [] });
      assert.equal((await recsError).code, 'protocol');
      conn.send({ type: 'something_new', x: 1 });
      await sleep(30);
      assert.equal(client.state, 'open');
      assert.equal(client.stats().welcomes, 1);
      await client.close();
    });

    test('push messages and server errors without an event id reach their events', async () => {
      const { client, from } = setup();
      await nextEvent(client, 'open');
      const push = nextEvent(client, 'push');
      server.connections[from].send({ type: 'push', id: 'p-1', topic: 'promo', data: { pct: 20, tags: ['a'] } });
      assert.deepEqual(await push, { id: 'p-1', topic: 'promo', data: { pct: 20, tags: ['a'] } });
      const error = nextEvent(client, 'error');
      server.connections[from].send({ type: 'error', code: 4040, name: 'unknown_surface', message: 'no subscription to that surface', fatal: false });
      const err = await error;
      assert.ok(err instanceof ServerError);
      assert.equal(err.code, 4040);
      assert.equal(err.eventId, undefined);
      assert.equal(client.state, 'open');
      await client.close();
    });

    test('autoConnect: false waits for connect(); close() before connecting stays closed', async () => {
      const { client, from } = setup({ autoConnect: false });
      await sleep(30);
      assert.equal(client.state, 'closed');
      assert.equal(server.connections.length, from);
      client.connect();
      await nextEvent(client, 'open');
      await client.close();
      const idle = makeClient(server.url, enc);
      await idle.close();
      await sleep(30);
      assert.equal(idle.state, 'closed');
      assert.equal(idle.stats().attempts, 0);
    });

    test('close() resolves once the socket closed and leaves no timers or socket listeners', async () => {
      const { client, from } = setup({ pingIntervalMs: 1000 });
      await nextEvent(client, 'open');
      client.subscribe('home', () => {});
      const closed = nextEvent(client, 'closed');
      await client.close();
      assert.deepEqual(await closed, { code: 1000, reason: 'client closed' });
      assert.equal(server.connections[from].ws.readyState, 3);
      const stats = client.stats();
      assert.equal(stats.timers, 0);
      assert.equal(stats.socketListeners, 0);
      await sleep(50);
      assert.equal(server.connections.length, from + 1, 'no reconnect after close()');
    });
  });
}

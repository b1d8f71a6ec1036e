// SPDX-License-Identifier: Apache-2.0
// What the client does on its own over a session's life, against the fake server: refreshing
// its token ahead of `exp`, reconnecting at once when the browser comes back online or the page
// becomes visible, and reporting what it does to the `debug` hook.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { ClientError } from '../src/index.js';

import { FakeServer, sleep } from '../test-support/fake-server.mjs';
import { ENCODINGS, closeAllClients, makeClient, nextEvent } from '../test-support/helpers.mjs';

/** An unsigned JWT expiring at `expMs` (the client only reads `exp`; the fake server checks nothing). */
const jwt = (expMs, sub = 'u-test') => {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, exp: Math.floor(expMs / 1000) })}.sig`;
};

/**
 * Browser-like globals for one test: `online` on the global scope, a document with
 * visibilityState and `visibilitychange`, counting their listeners; restore() removes them.
 */
function fakeBrowserGlobals() {
  const scope = new EventTarget();
  const doc = Object.assign(new EventTarget(), { visibilityState: 'hidden' });
  const listeners = { online: 0, visibilitychange: 0 };
  const counted = (target) => ({
    add: (type, fn) => {
      listeners[type] = (listeners[type] ?? 0) + 1;
      EventTarget.prototype.addEventListener.call(target, type, fn);
    },
    remove: (type, fn) => {
      listeners[type] -= 1;
      EventTarget.prototype.removeEventListener.call(target, type, fn);
    },
  });
  const s = counted(scope);
  const d = counted(doc);
  globalThis.addEventListener = s.add;
  globalThis.removeEventListener = s.remove;
  doc.addEventListener = d.add;
  doc.removeEventListener = d.remove;
  globalThis.document = doc;
  return {
    listeners,
    online: () => scope.dispatchEvent(new Event('online')),
    visible: () => {
      doc.visibilityState = 'visible';
      EventTarget.prototype.dispatchEvent.call(doc, new Event('visibilitychange'));
    },
    restore: () => {
      delete globalThis.addEventListener;
      delete globalThis.removeEventListener;
      delete globalThis.document;
    },
  };
}

for (const enc of ENCODINGS) {
  describe(`lifecycle (${enc})`, { timeout: 20_000 }, () => {
    let server;
    before(async () => {
      server = await FakeServer.start();
    });
    after(() => server.stop());
    afterEach(closeAllClients);

    test('with a token provider, the token is refreshed ahead of its exp, then ahead of each auth_ok exp_ms', async () => {
      const asked = [];
      server.handle = (conn, msg) => {
        if (msg.type !== 'auth') return false;
        conn.send({ type: 'auth_ok', exp_ms: Date.now() + 1200 });
        return true;
      };
      const from = server.connections.length;
      const started = Date.now();
      const client = makeClient(server.url, enc, {
        refreshAheadMs: 2000,
        tokenProvider: ({ reason }) => {
          asked.push(reason);
          return jwt(Date.now() + 3000);
        },
      });
      await nextEvent(client, 'open');
      const first = await nextEvent(client, 'auth', { timeoutMs: 4000 });
      // exp is in whole seconds, 2–3 s ahead: refreshed 2 s before it, or at half-life.
      assert.ok(Date.now() - started < 2500, `first refresh after ${Date.now() - started} ms`);
      assert.ok(first.expMs > Date.now());
      await nextEvent(client, 'auth', { timeoutMs: 2000 }); // 1.2 s token: refreshed at half-life
      assert.deepEqual(asked, ['initial', 'refresh', 'refresh']);
      const auths = server.received('auth', server.connections[from]);
      assert.equal(auths.length, 2, 'both refreshes on the first connection');
      assert.equal(server.connections.length, from + 1, 'no reconnect');
      await client.close();
      assert.equal(client.stats().timers, 0);
      server.handle = null;
    });

    test('a fixed token, or one without exp, is not refreshed', async () => {
      const from = server.connections.length;
      const fixed = makeClient(server.url, enc, { refreshAheadMs: 10_000, token: jwt(Date.now() + 5000) });
      let calls = 0;
      const opaque = makeClient(server.url, enc, { refreshAheadMs: 10_000, user: 'u-opaque', tokenProvider: () => (calls++, 'not-a-jwt') });
      await Promise.all([nextEvent(fixed, 'open'), nextEvent(opaque, 'open')]);
      await sleep(300);
      assert.equal(calls, 1);
      for (const conn of server.connections.slice(from)) assert.equal(server.received('auth', conn).length, 0);
    });

    test('a token provider failing at refresh time is reported as ClientError("token"); the session stays', async () => {
      let n = 0;
      const client = makeClient(server.url, enc, {
        refreshAheadMs: 60_000,
        tokenProvider: () => {
          n += 1;
          if (n > 1) throw new Error('auth service down');
          return jwt(Date.now() + 2000);
        },
      });
      const err = await nextEvent(client, 'error', { timeoutMs: 3000 });
      assert.ok(err instanceof ClientError && err.code === 'token', String(err));
      assert.equal(client.state, 'open');
    });

    test('online and visibilitychange (visible) reconnect at once instead of waiting out the backoff', async (t) => {
      const env = fakeBrowserGlobals();
      t.after(env.restore);
      // A one-minute backoff: without the events the client would not be back within the test.
      const client = makeClient(server.url, enc, { reconnect: { baseMs: 60_000, capMs: 60_000 }, clock: { random: () => 0.99 } });
      await nextEvent(client, 'open');
      assert.deepEqual(env.listeners, { online: 1, visibilitychange: 1 });

      let reconnecting = nextEvent(client, 'reconnecting');
      server.last.close(1000);
      assert.ok((await reconnecting).delayMs > 50_000);
      let reopened = nextEvent(client, 'open', { timeoutMs: 1000 });
      env.online();
      await reopened;

      reconnecting = nextEvent(client, 'reconnecting');
      server.last.close(1000);
      await reconnecting;
      reopened = nextEvent(client, 'open', { timeoutMs: 1000 });
      env.visible();
      await reopened;

      // Online while open changes nothing; close() removes the listeners.
      const conns = server.connections.length;
      env.online();
      await sleep(50);
      assert.equal(server.connections.length, conns);
      await client.close();
      assert.deepEqual(env.listeners, { online: 0, visibilitychange: 0 });
    });

    test('the debug hook hears state changes, messages both ways and reconnect decisions; a throwing hook is ignored', async () => {
      const seen = [];
      const client = makeClient(server.url, enc, { debug: (event, detail) => seen.push({ event, ...detail }) });
      await nextEvent(client, 'open');
      client.subscribe('home', () => {});
      await nextEvent(client, 'recs');
      const reconnecting = nextEvent(client, 'reconnecting');
      server.last.close(1000);
      await reconnecting;
      await nextEvent(client, 'open');
      await client.close();
      const has = (want) => seen.some((s) => Object.entries(want).every(([k, v]) => s[k] === v));
      for (const want of [
        { event: 'state', previous: 'closed', state: 'connecting' },
        { event: 'send', type: 'hello' },
        { event: 'receive', type: 'welcome' },
        { event: 'state', previous: 'connecting', state: 'open' },
        { event: 'send', type: 'subscribe' },
        { event: 'receive', type: 'recs' },
        { event: 'lost', reason: 'close', code: 1000 },
        { event: 'reconnect', attempt: 1, why: 'reconnect' },
        { event: 'state', state: 'closed' },
      ]) {
        assert.ok(has(want), `debug saw ${JSON.stringify(want)}: ${JSON.stringify(seen)}`);
      }

      const loud = makeClient(server.url, enc, {
        debug: () => {
          throw new Error('hook bug');
        },
      });
      await nextEvent(loud, 'open');
      assert.throws(() => makeClient(server.url, enc, { debug: 'yes' }), (e) => e instanceof ClientError && e.code === 'invalid_argument');
    });
  });
}

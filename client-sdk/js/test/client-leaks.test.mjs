// SPDX-License-Identifier: Apache-2.0
// No listener or timer leaks across thousands of reconnects: 2,000 connections closed by the
// fake server right after welcome (with a live subscription and events in flight), then 300
// reconnect() calls from the client side. Afterwards the client's own counters (timers,
// socket listeners, emitter listeners) and the process's active timers are back to baseline.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import WebSocket from 'ws';

import { FakeServer, sleep, waitUntil } from '../test-support/fake-server.mjs';
import { makeClient, nextEvent } from '../test-support/helpers.mjs';

const activeTimeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

/**
 * The `ws` WebSocket, counting the listeners really attached through addEventListener over all
 * sockets: an independent check of the client's own bookkeeping.
 */
let attachedListeners = 0;
class CountingWebSocket extends WebSocket {
  addEventListener(type, fn, options) {
    this.counted ??= new Set();
    if (!this.counted.has(fn)) {
      this.counted.add(fn);
      attachedListeners++;
    }
    super.addEventListener(type, fn, options);
  }

  removeEventListener(type, fn) {
    if (this.counted?.delete(fn)) attachedListeners--;
    super.removeEventListener(type, fn);
  }
}

test('2,000 server-forced and 300 client-forced reconnects leave no timers or listeners behind', { timeout: 120_000 }, async () => {
  const server = await FakeServer.start();
  await sleep(50);
  const processBaseline = activeTimeouts();
  const client = makeClient(server.url, 'msgpack', {
    WebSocket: CountingWebSocket,
    reconnect: { baseMs: 1, capMs: 2 },
    pingIntervalMs: 60_000, // a keepalive timer per connection, which must die with it
    ackTimeoutMs: 60_000,
  });
  let opens = 0;
  const offOpen = client.on('open', () => opens++);
  const offState = client.on('state', () => {});
  const lists = [];
  const sub = client.subscribe('home', { k: 3 }, (l) => lists.push(l.version));
  await nextEvent(client, 'open');
  await waitUntil(() => lists.length === 1);
  const openBaseline = client.stats();
  assert.equal(openBaseline.timers, 1, 'open and idle: only the keepalive timer');
  assert.equal(openBaseline.socketListeners, 4);
  const listenerBaseline = openBaseline.listeners;

  // Phase 1: the server closes every connection as soon as it has answered the subscribe.
  const FORCED = 2000;
  let closing = true;
  server.handle = (conn, msg) => {
    if (msg.type !== 'subscribe' || !closing) return false;
    conn.send(server.recs(msg.surface));
    conn.close(1000, 'bye');
    return true;
  };
  const tracked = [];
  const startOpens = opens;
  client.reconnect();
  while (opens - startOpens < FORCED) {
    // Events in flight across the churn: each must be acked exactly once in the end.
    if (tracked.length < 40 && (opens - startOpens) % 50 === 0) tracked.push(client.track({ kind: 'view', item: `item-${tracked.length}` }));
    await sleep(1);
    assert.ok(client.stats().socketListeners <= 12, `socket listeners ${client.stats().socketListeners} mid-churn`);
  }
  closing = false;
  await waitUntil(() => client.state === 'open' && server.live.length === 1, { timeoutMs: 5000, what: 'a stable connection' });
  await Promise.all(tracked);

  // Phase 2: the client drops its own connection, 300 times.
  for (let i = 0; i < 300; i++) {
    const opened = nextEvent(client, 'open');
    client.reconnect();
    await opened;
  }
  await waitUntil(() => server.live.length === 1, { what: 'old connections closed' });
  await sleep(50);

  const after = client.stats();
  assert.ok(after.welcomes >= FORCED + 300, `welcomes ${after.welcomes}`);
  assert.equal(after.timers, openBaseline.timers, 'timers back to the open baseline');
  assert.equal(after.socketListeners, 4, 'only the live socket has listeners');
  assert.equal(attachedListeners, 4, 'counted on the sockets themselves');
  assert.equal(after.listeners, listenerBaseline, 'emitter listeners unchanged');
  assert.equal(after.subscriptions, 1);
  assert.equal(after.queued, 0);
  assert.equal(sub.active, true);
  assert.ok(lists.length >= FORCED, `the list came back after every reconnect (${lists.length})`);
  assert.equal(new Set(server.eventIds()).size, tracked.length, 'every tracked event reached the server');

  offOpen();
  offState();
  await client.close();
  const closed = client.stats();
  assert.equal(closed.timers, 0);
  assert.equal(closed.socketListeners, 0);
  assert.equal(attachedListeners, 0);
  assert.equal(closed.listeners, listenerBaseline - 2);
  await server.stop();
  await sleep(50);
  assert.ok(activeTimeouts() <= processBaseline, `process timers ${activeTimeouts()} > baseline ${processBaseline}`);
});

// SPDX-License-Identifier: Apache-2.0
// User profiles in a real redis-server (PROTOCOL-independent: the profile is checked in Redis
// itself). Every test starts its own redis-server and rankcast processes and stops them.
//  - profiles written behind, batched, small, and counting every accepted event;
//  - a restarted rankcast restores personalization from Redis;
//  - Redis killed mid-stream: lists keep coming, /readyz says so, and after Redis returns the
//    profile counts every event that was acknowledged;
//  - two rankcast nodes updating one user concurrently lose no update;
//  - erasure (admin API) removes the key and the in-memory state; consent false stores nothing;
//  - a full buffer drops the newest updates and says so in /metrics.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import {
  closeAllClients,
  connectHello,
  httpGet,
  metricTotals,
  parsePrometheus,
  sleep,
  startServer,
  stopServerCleanly,
  uniqueId,
} from './harness.mjs';
import { encode } from '@msgpack/msgpack';

import { Redis, eventually, redisAvailable } from './redis-harness.mjs';

const ADMIN = 'it-admin-token';
const skip = redisAvailable() ? false : 'redis-server is not installed (scripts/setup installs it)';

async function startNode(redis, extra = []) {
  return startServer({ extraArgs: ['--redis', redis.url, '--admin-token', ADMIN, ...extra] });
}

/** Sends `n` click events on `items` (cycled) and resolves to the ids the server acked. */
async function clickAll(client, items, n, prefix) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const id = `${prefix}-${i}`;
    ids.push(id);
    client.send({ type: 'event', id, kind: 'click', item: items[i % items.length].id });
  }
  const acked = new Set();
  while (acked.size < n) {
    const ack = await client.next('ack', 5000);
    for (const id of ack.ids) acked.add(id);
  }
  return ids;
}

function itemsOf(server, category) {
  return server.items.filter((it) => it.category === category);
}

function share(recs, category) {
  return recs.items.filter((it) => it.category === category).length / recs.items.length;
}

async function metric(server, name) {
  const { body } = await httpGet(server, '/metrics');
  return metricTotals(parsePrometheus(body).samples)[name] ?? 0;
}

describe('profiles in Redis', { skip }, () => {
  after(() => closeAllClients());

  test('events are written behind as one small profile that counts them all', async () => {
    const redis = await new Redis().start();
    const server = await startNode(redis);
    try {
      const user = uniqueId('u');
      const { client } = await connectHello(server, 'json', { user });
      await client.subscribe('home', { k: 6 });
      await clickAll(client, itemsOf(server, 'kitchen'), 30, 'k');
      const p = await eventually(async () => {
        const doc = await redis.profile(user);
        return doc && doc.n === 30 ? doc : null;
      }, 3000, 'profile n = 30');
      assert.ok(p.c.kitchen > 0, `kitchen affinity in ${JSON.stringify(p.c)}`);
      // Content feature affinities (the long-term content vector): the 16 strongest, by id.
      const feats = Object.entries(p.f ?? {});
      assert.ok(feats.length > 0 && feats.length <= 16, JSON.stringify(p.f));
      for (const [k, w] of feats) assert.ok(/^[0-9a-f]{8}$/.test(k) && w > 0, `${k}: ${w}`);
      assert.ok(p.r.length > 0 && p.r.length <= 16);
      const bytes = await redis.command('MEMORY', 'USAGE', `rc:p:${user}`);
      assert.ok(bytes <= 512, `profile takes ${bytes} bytes in Redis`);
      const ttl = await redis.command('PTTL', `rc:p:${user}`);
      assert.ok(ttl > 0, 'the profile expires');
      // Write-behind batches: far fewer commands than events.
      const commands = await metric(server, 'rankcast_profile_commands_total');
      assert.ok(commands < 30, `${commands} Redis commands for 30 events`);
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
      await redis.stop();
    }
  });

  // The Lua merge mirrors rc_profile_apply_delta(): stored affinities fade by half in 30 days
  // of inactivity before the new ones add (a profile last written 30 days ago is planted).
  test('stored affinities fade with the time since the last update', async () => {
    const redis = await new Redis().start();
    const server = await startNode(redis);
    try {
      const user = uniqueId('u');
      const month = 30 * 86400 * 1000;
      const planted = encode({ v: 1, n: 10, c: { kitchen: 8 }, f: { '0000abcd': 6 }, r: [], x: [], t: Date.now() - month });
      await redis.command('SET', `rc:p:${user}`, Buffer.from(planted));
      const { client } = await connectHello(server, 'json', { user });
      await clickAll(client, itemsOf(server, 'bags').slice(0, 1), 1, 'b');
      const p = await eventually(async () => {
        const doc = await redis.profile(user);
        return doc && doc.n === 11 ? doc : null;
      }, 3000, 'profile n = 11');
      assert.ok(Math.abs(p.c.kitchen - 4) < 0.01, JSON.stringify(p.c));
      assert.ok(Math.abs(p.f['0000abcd'] - 3) < 0.01, JSON.stringify(p.f));
      assert.ok(p.c.bags > 0, JSON.stringify(p.c));
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
      await redis.stop();
    }
  });

  test('a restarted rankcast restores personalization from Redis', async () => {
    const redis = await new Redis().start();
    const user = uniqueId('u');
    let server = await startNode(redis);
    try {
      const { client } = await connectHello(server, 'json', { user });
      const cold = await client.subscribe('home', { k: 10 });
      await clickAll(client, itemsOf(server, 'christmas').slice(0, 6), 6, 'x');
      closeAllClients();
      await stopServerCleanly(server); // the drain writes what is pending
      assert.equal((await redis.profile(user)).n, 6);

      server = await startNode(redis);
      const again = await connectHello(server, 'json', { user });
      const first = await again.client.subscribe('home', { k: 10 });
      // The profile may arrive before the subscription (then the first list has it) or after
      // (then the list is pushed again).
      const restored = share(first, 'christmas') >= 0.5
        ? first
        : await again.client.next((m) => m.type === 'recs' && share(m, 'christmas') >= 0.5, 5000);
      assert.ok(share(restored, 'christmas') > share(cold, 'christmas'));
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
      await redis.stop();
    }
  });

  test('Redis killed mid-stream: lists keep coming, and every acknowledged event is counted', async () => {
    const redis = await new Redis().start();
    const server = await startNode(redis);
    try {
      const user = uniqueId('u');
      const { client } = await connectHello(server, 'msgpack', { user });
      await client.subscribe('home', { k: 6 });
      const bags = itemsOf(server, 'bags');
      await clickAll(client, bags, 20, 'before');
      await eventually(async () => (await redis.profile(user))?.n === 20, 3000, 'profile n = 20');

      await redis.kill();
      // Meanwhile the node serves from memory: events are acknowledged and lists pushed.
      client.send({ type: 'event', id: 'during-probe', kind: 'cart', item: itemsOf(server, 'stationery')[0].id });
      const pushed = await client.next((m) => m.type === 'recs' && m.cause === 'during-probe', 3000);
      assert.ok(pushed.items.length > 0);
      await clickAll(client, bags, 25, 'during');
      const ready = await eventually(async () => {
        const r = await httpGet(server, '/readyz');
        return r.status === 503 ? r : null;
      }, 3000, '/readyz 503 while Redis is down');
      assert.match(ready.body, /redis/);
      assert.equal(await metric(server, 'rankcast_profile_store_up'), 0);
      // Within one write-behind period the buffered updates show.
      await eventually(async () => (await metric(server, 'rankcast_profile_buffered_bytes')) > 0, 2000,
        'updates buffered while Redis is down');

      await redis.start(); // same port, same data
      await eventually(async () => (await httpGet(server, '/readyz')).status === 200, 10000, 'ready again');
      await clickAll(client, bags, 5, 'after');
      const total = 20 + 1 + 25 + 5;
      await eventually(async () => (await redis.profile(user))?.n === total, 5000, `profile n = ${total}`);
      assert.equal(await metric(server, 'rankcast_profile_updates_dropped_total'), 0);
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
      await redis.stop();
    }
  });

  test('two rankcast nodes updating one user concurrently lose no update', async () => {
    const redis = await new Redis().start();
    const a = await startNode(redis, ['--node-id', 'na']);
    const b = await startNode(redis, ['--node-id', 'nb']);
    try {
      const user = uniqueId('u');
      const ca = (await connectHello(a, 'json', { user })).client;
      const cb = (await connectHello(b, 'msgpack', { user })).client;
      await Promise.all([
        clickAll(ca, itemsOf(a, 'kitchen'), 60, 'a'),
        clickAll(cb, itemsOf(b, 'bags'), 60, 'b'),
      ]);
      const p = await eventually(async () => {
        const doc = await redis.profile(user);
        return doc?.n === 120 ? doc : null;
      }, 5000, 'profile n = 120');
      assert.ok(p.c.kitchen > 0 && p.c.bags > 0, JSON.stringify(p.c));
    } finally {
      closeAllClients();
      await stopServerCleanly(a);
      await stopServerCleanly(b);
      await redis.stop();
    }
  });

  test('erasure removes the profile and the in-memory state; it needs the admin token', async () => {
    const redis = await new Redis().start();
    const server = await startNode(redis);
    try {
      const user = uniqueId('u');
      const { client } = await connectHello(server, 'json', { user });
      await client.subscribe('home', { k: 10 });
      await clickAll(client, itemsOf(server, 'candles-lights').slice(0, 6), 6, 'c');
      await eventually(async () => (await redis.profile(user)) !== null, 3000, 'profile written');

      const post = (headers, body) =>
        fetch(`${server.httpUrl}/api/v1/users/erase`, { method: 'POST', headers, body: JSON.stringify(body) });
      assert.equal((await post({}, { user })).status, 401);
      assert.equal((await post({ authorization: 'Bearer wrong' }, { user })).status, 401);
      assert.equal((await post({ authorization: `Bearer ${ADMIN}` }, { nobody: 1 })).status, 400);
      const ok = await post({ authorization: `Bearer ${ADMIN}` }, { user });
      assert.equal(ok.status, 200);

      await eventually(async () => (await redis.command('EXISTS', `rc:p:${user}`)) === 0, 3000, 'key gone');
      // Live connections get a list computed from nothing.
      const fresh = await client.next((m) => m.type === 'recs' && m.cause === undefined, 3000);
      assert.ok(share(fresh, 'candles-lights') <= 0.6, JSON.stringify(fresh.items.map((i) => i.category)));
      // Nothing left behind reappears: the next write starts a new profile.
      await clickAll(client, itemsOf(server, 'kitchen'), 1, 'after-erase');
      const p = await eventually(async () => redis.profile(user), 3000, 'new profile');
      assert.equal(p.n, 1);
      assert.ok(!('candles-lights' in p.c), JSON.stringify(p.c));
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
      await redis.stop();
    }
  });

  test('a user without consent gets lists but nothing is written to Redis', async () => {
    const redis = await new Redis().start();
    const server = await startNode(redis);
    try {
      const user = uniqueId('u');
      const { client } = await connectHello(server, 'json', { user, consent: false });
      await client.subscribe('home', { k: 6 });
      await clickAll(client, itemsOf(server, 'kitchen'), 10, 'nc');
      await sleep(400); // several write-behind periods
      assert.equal(await redis.command('EXISTS', `rc:p:${user}`), 0);
      assert.deepEqual(await redis.command('KEYS', 'rc:*'), []);
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
      await redis.stop();
    }
  });

  test('with Redis down and the buffer full, the newest updates are dropped and counted', async () => {
    const redis = await new Redis().start();
    const server = await startNode(redis, ['--redis-buffer-bytes', '4096']);
    try {
      await redis.kill();
      await eventually(async () => (await httpGet(server, '/readyz')).status === 503, 3000, 'not ready');
      const clients = [];
      for (let i = 0; i < 20; i++) clients.push((await connectHello(server, 'json', { user: uniqueId('flood') })).client);
      for (let round = 0; round < 6; round++) {
        await Promise.all(clients.map((c, i) => clickAll(c, itemsOf(server, 'bags'), 3, `r${round}-${i}`)));
        await sleep(120);
      }
      const dropped = await metric(server, 'rankcast_profile_updates_dropped_total');
      assert.ok(dropped > 0, 'updates were dropped');
      assert.ok((await metric(server, 'rankcast_profile_buffered_bytes')) <= 4096);
      // The node itself kept serving.
      const { client } = await connectHello(server, 'json', { user: uniqueId('u') });
      await client.subscribe('home', { k: 3 });
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
      await redis.stop();
    }
  });
});

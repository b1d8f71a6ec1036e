// SPDX-License-Identifier: Apache-2.0
// Profiles across a crash, with --data-dir (docs/durability.md), killing real processes:
//  - with a real redis-server: the node is SIGKILLed at a seeded random moment of a steady
//    stream of events; after the restart every acknowledged event is in the user's profile,
//    and once the clients have sent every id again each event is counted exactly once;
//  - four SIGKILLs in a row under the stream, with snapshots (written by a child process)
//    between them and profile changes written behind slowly: after each restart every
//    acknowledged event is in the profile, and at the end each counts exactly once;
//  - an erasure the node took just before a SIGKILL stays complete after the restart;
//  - with the in-memory store: the profiles come back from the log, so a returning visitor is
//    recognised after a SIGKILL.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { adminRequest, closeAllClients, connectHello, sleep, stopServerCleanly, uniqueId } from './harness.mjs';
import { ADMIN, SEED, dataDir, generator, kill9, start } from './durability-harness.mjs';
import { Redis, eventually, redisAvailable } from './redis-harness.mjs';

/** Sends `ids` as click events on `items` (cycled) and resolves once all are acknowledged. */
async function sendAll(client, ids, items) {
  const acked = new Set();
  for (let i = 0; i < ids.length; i += 50) {
    const batch = ids.slice(i, i + 50);
    client.send({ type: 'events', events: batch.map((id, j) => ({ id, kind: 'click', item: items[(i + j) % items.length].id })) });
  }
  while (acked.size < ids.length) {
    const m = await client.next((x) => x.type === 'ack' || x.type === 'error', 5000);
    assert.equal(m.type, 'ack', `an error instead of an ack: ${JSON.stringify(m)}`);
    for (const id of m.ids) acked.add(id);
  }
}

/** Streams click events of `clients` round-robin, `perMessage` per message (ids `prefix`0, 1,
 * …) every `pauseMs`, until `until`. Returns
 * {sent: Map(user -> ids), acked: Map(user -> Set of ids)}. */
async function stream(clients, items, until, { prefix = 'e', perMessage = 10, pauseMs = 2 } = {}) {
  const sent = new Map(clients.map(({ user }) => [user, []]));
  const acked = new Map(clients.map(({ user }) => [user, new Set()]));
  const collect = () => {
    for (const { user, client } of clients) {
      for (const m of client.inbox.splice(0)) if (m.type === 'ack') for (const id of m.ids) acked.get(user).add(id);
    }
  };
  for (let turn = 0; Date.now() < until; turn++) {
    const { user, client } = clients[turn % clients.length];
    const ids = sent.get(user);
    const batch = Array.from({ length: perMessage }, (_, j) => `${prefix}${ids.length + j}`);
    ids.push(...batch);
    client.send({ type: 'events', events: batch.map((id, j) => ({ id, kind: 'click', item: items[(ids.length + j) % items.length].id })) });
    await sleep(pauseMs);
    collect();
  }
  return { sent, acked, collect };
}

const ROUNDS = 4;
const skip = redisAvailable() ? false : 'redis-server is not installed (scripts/setup installs it)';

describe('profiles in Redis survive a SIGKILL of the node', { skip }, () => {
  for (const fsync of ['always', 'interval']) {
    test(`fsync ${fsync}: every acknowledged event reaches the profile, and each counts once`, async () => {
      const rand = generator(SEED + fsync.length * 31);
      const redis = await new Redis().start();
      const dir = dataDir();
      const args = ['--redis', redis.url, '--fsync', fsync];
      let server = await start(dir, args);
      try {
        const items = server.items;
        const users = Array.from({ length: 3 }, () => uniqueId('anon-pdur'));
        const clients = [];
        for (const user of users) clients.push({ user, client: (await connectHello(server, 'json', { user })).client });
        const { sent, acked, collect } = await stream(clients, items, Date.now() + 300 + Math.floor(rand() * 500));
        // On a loaded machine the first acks can come late: the kill waits for one.
        const total = () => [...acked.values()].reduce((a, x) => a + x.size, 0);
        for (const deadline = Date.now() + 5000; total() === 0 && Date.now() < deadline; collect()) await sleep(5);
        await kill9(server);
        collect();
        for (const { client } of clients) client.close();
        const ackedTotal = [...acked.values()].reduce((a, s) => a + s.size, 0);
        assert.ok(ackedTotal > 0, 'some events were acknowledged before the kill');

        server = await start(dir, args);
        // Every acknowledged event is in the profile once the restarted node has sent what
        // Redis lacked (the profile may hold events sent but not yet acknowledged too).
        for (const user of users) {
          await eventually(async () => ((await redis.profile(user))?.n ?? 0) >= acked.get(user).size, 5000,
            `profile of ${user} holds its ${acked.get(user).size} acknowledged events`);
        }
        // The clients send every id again: the ones the log held are recognised, the others
        // are applied, and the profile counts each event once.
        for (const user of users) {
          const { client } = await connectHello(server, 'json', { user });
          await sendAll(client, sent.get(user), items);
          client.close();
        }
        for (const user of users) {
          const want = sent.get(user).length;
          await eventually(async () => (await redis.profile(user))?.n === want, 5000, `profile n = ${want}`);
        }
        await sleep(500); // nothing more arrives later
        for (const user of users) assert.equal((await redis.profile(user)).n, sent.get(user).length);
      } finally {
        closeAllClients();
        await stopServerCleanly(server);
        await redis.stop();
      }
    });
  }

  test('SIGKILLs in a row, with snapshots written between them: every acknowledged event counts once', async () => {
    const rand = generator(SEED + 97);
    const redis = await new Redis().start();
    const dir = dataDir();
    // A snapshot every second: some kills land while its writer (a child process) runs. Profile
    // changes are written behind slowly, so that a snapshot covers changes Redis lacks.
    const args = ['--redis', redis.url, '--fsync', 'interval', '--snapshot-interval-s', '1', '--profile-flush-ms', '1500'];
    const users = Array.from({ length: 3 }, () => uniqueId('anon-pkill'));
    const sentAll = new Map(users.map((u) => [u, []]));
    const ackedAll = new Map(users.map((u) => [u, new Set()]));
    let server = await start(dir, args);
    try {
      const items = server.items;
      for (let round = 0; round < ROUNDS; round++) {
        const clients = [];
        for (const user of users) clients.push({ user, client: (await connectHello(server, 'json', { user })).client });
        // Each round sends ids of its own; all rounds together stay within the window of ids
        // a node remembers per user (1,024: docs/durability.md), so that every retry at the
        // end is one the node must recognise.
        const { sent, acked, collect } = await stream(clients, items, Date.now() + 400 + Math.floor(rand() * 900),
          { prefix: `r${round}-`, perMessage: 2, pauseMs: 5 });
        const total = () => [...acked.values()].reduce((a, x) => a + x.size, 0);
        for (const deadline = Date.now() + 5000; total() === 0 && Date.now() < deadline; collect()) await sleep(5);
        // The second round ends after a snapshot, so that the third restart reads one and the
        // log after it.
        const snapshotted = () => /msg="snapshot written"/.test(server.output());
        if (round === 1) for (const deadline = Date.now() + 5000; !snapshotted() && Date.now() < deadline; collect()) await sleep(20);
        await kill9(server);
        collect();
        for (const { client } of clients) client.close();
        for (const user of users) {
          sentAll.get(user).push(...sent.get(user));
          for (const id of acked.get(user)) ackedAll.get(user).add(id);
        }
        if (round === 1) assert.ok(snapshotted(), 'a snapshot was written before the second SIGKILL');
        server = await start(dir, args);
        if (round === 1) assert.match(server.output(), /msg="snapshot read"/);
        for (const user of users) {
          await eventually(async () => ((await redis.profile(user))?.n ?? 0) >= ackedAll.get(user).size, 5000,
            `round ${round}: profile of ${user} holds its ${ackedAll.get(user).size} acknowledged events`);
        }
      }
      for (const user of users) assert.ok(sentAll.get(user).length <= 1024, `${sentAll.get(user).length} ids of ${user} fit the window`);
      // Every id of every round again: each event counts once.
      for (const user of users) {
        const { client } = await connectHello(server, 'json', { user });
        await sendAll(client, sentAll.get(user), items);
        client.close();
      }
      for (const user of users) {
        const want = sentAll.get(user).length;
        await eventually(async () => (await redis.profile(user))?.n === want, 5000, `profile n = ${want}`);
      }
      await sleep(500);
      for (const user of users) assert.equal((await redis.profile(user)).n, sentAll.get(user).length);
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
      await redis.stop();
    }
  });

  test('an erasure taken just before a SIGKILL stays complete after the restart', async () => {
    const redis = await new Redis().start();
    const dir = dataDir();
    const args = ['--redis', redis.url];
    let server = await start(dir, args);
    try {
      const user = uniqueId('anon-perase');
      const { client } = await connectHello(server, 'json', { user });
      await sendAll(client, ['a1', 'a2', 'a3'], server.items);
      client.close();
      await eventually(async () => (await redis.profile(user))?.n === 3, 3000, 'profile n = 3');
      const res = await adminRequest(server, 'POST', '/api/v1/users/erase', { user }, ADMIN);
      assert.equal(res.status, 200, JSON.stringify(res));
      await kill9(server);
      server = await start(dir, args);
      await sleep(1000); // the restarted node has sent what it had to
      assert.equal(await redis.profile(user), null, 'the erased profile came back');
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
      await redis.stop();
    }
  });
});

test('in-memory profiles come back from the log after a SIGKILL', async () => {
  const dir = dataDir();
  let server = await start(dir);
  // What a visitor bought stays out of their lists (the profile's excluded items), while
  // the purchases make the items popular for everyone else.
  const bought = server.items.slice(0, 3);
  const user = uniqueId('anon-pmem');
  {
    const { client } = await connectHello(server, 'json', { user });
    client.send({ type: 'events', events: bought.map((it, i) => ({ id: `b${i}`, kind: 'purchase', item: it.id })) });
    await client.next((m) => m.type === 'ack' && m.ids.length === 3);
    client.close();
  }
  await kill9(server);
  server = await start(dir);
  try {
    const holdsBought = (recs) => recs.items.some((it) => bought.some((b) => b.id === it.item));
    const stranger = await connectHello(server, 'json', { user: uniqueId('anon-pnew') });
    assert.ok(holdsBought(await stranger.client.subscribe('home', { k: 20 })), 'the purchases made the items popular');
    const again = await connectHello(server, 'json', { user });
    const first = await again.client.subscribe('home', { k: 20 });
    // The profile may arrive before the subscription (then the first list has it) or after
    // (then the list is pushed again).
    if (holdsBought(first)) await again.client.next((m) => m.type === 'recs' && !holdsBought(m), 5000);
  } finally {
    closeAllClients();
    await stopServerCleanly(server);
  }
});

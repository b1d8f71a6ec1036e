// SPDX-License-Identifier: Apache-2.0
// Several event loops in one process (--loops N, docs/engine.md "Loops") against the real
// server: a connection is served whole by the loop that accepted it, and what the user's
// sessions on other loops must hear reaches them: events (relayed, their lists move with the
// event as cause), the state of a session starting beside another (history and the ids it
// de-duplicates), application pushes, erasures, catalog changes and rules; /metrics counts for the process, and
// so does --max-conns-per-ip; the flags several loops cannot work with yet are refused at
// start; SIGTERM drains every loop.
//
// The kernel, not the test, picks the loop of a connection (SO_REUSEPORT hashes addresses and
// ports), so the tests open many connections of one user: with n of them on two loops, all
// land on one loop with a chance of 2^-(n-1). Which loop serves which connection cannot be
// seen from here; each test asserts what must hold for every connection.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';

import {
  ENCODINGS,
  adminRequest,
  assertAck,
  assertRecs,
  closeAllClients,
  connect,
  connectHello,
  httpGet,
  metricTotals,
  parsePrometheus,
  sleep,
  startServer,
  stopServerCleanly,
  uniqueId,
} from './harness.mjs';
import { Redis, eventually, redisAvailable } from './redis-harness.mjs';

const LOOPS = 2;
const ADMIN = 'loops-admin-token';
/** Connections of one user per test: all on one of two loops with a chance of 2^-19. */
const MANY = 20;
/** Connections that start beside an existing session: all on its loop with a chance of 2^-12. */
const LATER = 12;
const WAIT_MS = 8000;

const itemIds = (recs) => recs.items.map((it) => it.item);

/** The metrics of `server`, each name summed over its labels. */
async function metrics(server) {
  const { status, body } = await httpGet(server, '/metrics');
  assert.equal(status, 200);
  return metricTotals(parsePrometheus(body).samples);
}

/**
 * Polls /metrics until `done(totals)` holds or `ms` passed; returns the last totals. Each loop
 * publishes its counts when it is about to sleep, so a count reaches /metrics shortly after the
 * loop counted it, not at once.
 */
async function metricsUntil(server, done, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const totals = await metrics(server);
    if (done(totals) || Date.now() > deadline) return totals;
    await sleep(20);
  }
}

/** Sends one event and waits for its ack, asserting the ack names exactly this event. */
async function sendEvent(client, fields) {
  const id = fields.id ?? uniqueId('ev');
  client.send({ type: 'event', id, ...fields });
  const ack = await client.next((m) => (m.type === 'ack' && m.ids.includes(id)) || (m.type === 'error' && m.id === id), WAIT_MS);
  assertAck(ack, [id]);
  return id;
}

/**
 * Opens `n` connections of `user` (both subprotocols, alternately), each subscribed to
 * `surface` with `k`; resolves to [{client, first}] where `first` is the list the subscription
 * was answered with.
 */
function openMany(server, user, n, { surface = 'home', k = 10 } = {}) {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const { client } = await connectHello(server, ENCODINGS[i % ENCODINGS.length], { user });
      const first = await client.subscribe(surface, { k });
      return { client, first };
    }),
  );
}

/** The items every one of `lists` holds, in the order of the first. */
function common(lists) {
  return itemIds(lists[0]).filter((id) => lists.every((l) => itemIds(l).includes(id)));
}

/** An upgrade request by hand from `localAddress`: the status of lws's answer, and the socket. */
function rawUpgrade(server, localAddress) {
  return new Promise((res, rej) => {
    const sock = netConnect({ port: server.port, host: server.host, localAddress });
    let data = '';
    sock.on('connect', () => {
      const lines = ['GET /ws HTTP/1.1', `Host: ${server.host}:${server.port}`, 'Upgrade: websocket', 'Connection: Upgrade',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: rankcast.v1.json'];
      sock.write(`${lines.join('\r\n')}\r\n\r\n`);
    });
    sock.on('data', (d) => {
      data += d.toString('latin1');
      if (data.includes('\r\n')) res({ status: Number(data.split(' ')[1]), text: data, sock });
    });
    sock.on('error', rej);
    sock.on('close', () => res({ status: 0, text: data, sock }));
  });
}

describe(`${LOOPS} loops serving one user's connections`, () => {
  let server;
  before(async () => {
    server = await startServer({ extraArgs: ['--loops', String(LOOPS), '--admin-token', ADMIN] });
  });
  after(async () => {
    closeAllClients();
    await stopServerCleanly(server);
  });
  afterEach(() => {
    assert.deepEqual(closeAllClients(), [], 'clients saw bad frames or out-of-order versions');
  });

  const post = (path, body) => adminRequest(server, 'POST', path, body, ADMIN);

  test('an event on one connection moves the lists of every connection of the user, on every loop', async () => {
    const user = uniqueId('relay');
    const sessions = (await metrics(server)).rankcast_sessions;
    const conns = await openMany(server, user, MANY);
    // What the suite relies on: the kernel spread the user's connections, one session per loop
    // (all on one loop with a chance of 2^-19).
    const spread = await metricsUntil(server, (t) => t.rankcast_sessions - sessions >= LOOPS);
    assert.equal(spread.rankcast_sessions - sessions, LOOPS, `sessions of one user with ${MANY} connections on ${LOOPS} loops`);
    // A purchase leaves the user's lists (docs/engine.md): an item every list holds makes
    // every list change, so every connection must be pushed one.
    const shared = common(conns.map((c) => c.first));
    assert.ok(shared.length > 0, `the ${MANY} lists of one new user share no item`);
    const bought = shared[0];
    const id = await sendEvent(conns[0].client, { kind: 'purchase', item: bought, surface: 'home' });
    for (const [i, { client, first }] of conns.entries()) {
      const pushed = await client.next((m) => m.type === 'recs' && m.surface === 'home' && m.cause === id, WAIT_MS);
      assertRecs(pushed, { surface: 'home', k: first.items.length, cause: id });
      assert.ok(pushed.version > first.version, `connection ${i}: version ${pushed.version} after ${first.version}`);
      assert.ok(!itemIds(pushed).includes(bought), `connection ${i}: the bought ${bought} is still listed`);
    }
  });

  test('a session starting beside another takes its state: a bought item stays out of the new lists', async () => {
    const user = uniqueId('handover');
    const { client: a } = await connectHello(server, 'json', { user });
    const first = await a.subscribe('home', { k: 10 });
    const bought = first.items[0].item;
    const id = await sendEvent(a, { kind: 'purchase', item: bought, surface: 'home' });
    const moved = await a.next((m) => m.type === 'recs' && m.cause === id, WAIT_MS);
    assert.ok(!itemIds(moved).includes(bought));
    // The control: a long list of a user who bought nothing holds the item, so a session that
    // started from the stored profile (written behind: empty while `a` lives) would list it.
    const { client: control } = await connectHello(server, 'msgpack', { user: uniqueId('control') });
    const theirs = await control.subscribe('home', { k: 100 });
    assert.ok(itemIds(theirs).includes(bought), `${bought} is not in a long list of a new user: no control`);
    const later = await openMany(server, user, LATER, { k: 100 });
    for (const [i, { client, first: list }] of later.entries()) {
      assert.ok(!itemIds(list).includes(bought), `connection ${i}: the bought ${bought} is listed: ${itemIds(list)}`);
      // Nor does a later list bring it back (a state that arrives after the first list).
      await client.roundTrip(WAIT_MS);
      const pushed = client.log.filter((m) => m.type === 'recs' && m.surface === 'home');
      for (const r of pushed) assert.ok(!itemIds(r).includes(bought), `connection ${i}: ${bought} in ${JSON.stringify(itemIds(r))}`);
    }
  });

  test('an event id seen on one loop is a duplicate on every loop: sessions that run beside it, and sessions that start after it', async () => {
    // Sessions that held the user when the event came hear it from the loop that took it;
    // sessions that start after it get the ids their peer remembers. Each retry of the id on
    // another connection is acknowledged and counted as a duplicate, not learned again.
    const before = (await metrics(server)).rankcast_events_duplicate_total ?? 0;
    let retries = 0;
    for (const when of ['beside', 'after']) {
      const user = uniqueId(`dedupe-${when}`);
      const { client: a } = await connectHello(server, 'json', { user });
      const aFirst = await a.subscribe('home', { k: 10 });
      const others = when === 'beside' ? await openMany(server, user, LATER) : [];
      // A purchase of an item every list holds: every list moves, so each connection beside
      // shows when its session heard the event (a retry before that would race the relay).
      const item = common([aFirst, ...others.map((c) => c.first)])[0];
      assert.ok(item, 'the lists of one new user share no item');
      const id = await sendEvent(a, { kind: 'purchase', item, surface: 'home' });
      if (when === 'after') others.push(...(await openMany(server, user, LATER)));
      else for (const { client } of others) await client.next((m) => m.type === 'recs' && m.cause === id, WAIT_MS);
      for (const { client } of others) {
        await sendEvent(client, { id, kind: 'purchase', item, surface: 'home' });
        retries += 1;
      }
    }
    const totals = await metricsUntil(server, (t) => (t.rankcast_events_duplicate_total ?? 0) - before >= retries);
    assert.equal((totals.rankcast_events_duplicate_total ?? 0) - before, retries, 'duplicates counted for the retries');
  });

  // A session asks its peer for the user's state; what its connections send meanwhile waits
  // for the answer (a retry of an id the peer saw is then a duplicate, and the session's own
  // purchases are not overwritten by the peer's state).
  test('events sent right after hello, beside a session on another loop, are kept and de-duplicated',
    async () => {
      const user = uniqueId('pipelined');
      const { client: a } = await connectHello(server, 'json', { user });
      await a.subscribe('home', { k: 10 });
      const seen = await sendEvent(a, { kind: 'click', item: server.items[30].id, surface: 'home' });
      const before = (await metrics(server)).rankcast_events_duplicate_total ?? 0;
      // Hello, a retry of the id `a` sent, and a purchase, in one go: a client reconnecting.
      const conns = await Promise.all(Array.from({ length: LATER }, () => connect(server, 'json')));
      const bought = conns.map((_, i) => server.items[40 + i].id);
      for (const [i, c] of conns.entries()) {
        c.send({ type: 'hello', v: 1, user });
        c.send({ type: 'event', id: seen, kind: 'click', item: server.items[30].id, surface: 'home' });
        c.send({ type: 'event', id: uniqueId('ev'), kind: 'purchase', item: bought[i], surface: 'home' });
      }
      for (const c of conns) await c.next((m) => m.type === 'ack' && m.ids.includes(seen), WAIT_MS);
      const totals = await metricsUntil(server, (t) => (t.rankcast_events_duplicate_total ?? 0) - before >= LATER, 2000);
      // A purchase acknowledged on a connection leaves the lists its session ranks after.
      for (const [i, c] of conns.entries()) {
        const list = await c.subscribe('home', { k: 100 });
        assert.ok(!itemIds(list).includes(bought[i]), `connection ${i}: its purchase of ${bought[i]} is listed`);
      }
      assert.equal((totals.rankcast_events_duplicate_total ?? 0) - before, LATER, 'duplicates counted for the retries');
    });

  test('an application push to a user reaches every connection of the user on every loop', async () => {
    const user = uniqueId('push');
    const conns = await openMany(server, user, MANY);
    const data = { text: uniqueId('hello'), n: [1, 2, 3] };
    const r = await post('/api/v1/push', { user, topic: 'loops', data });
    assert.equal(r.status, 202, r.text);
    assert.match(r.json?.id ?? '', /^p-/);
    for (const [i, { client }] of conns.entries()) {
      const push = await client.next((m) => m.type === 'push' && m.id === r.json.id, WAIT_MS);
      assert.equal(push.topic, 'loops', `connection ${i}`);
      assert.deepEqual(push.data, data, `connection ${i}`);
    }
  });

  test('an erasure reaches every loop: every connection of the user gets a list computed from nothing', async () => {
    const user = uniqueId('erase');
    const conns = await openMany(server, user, MANY);
    const shared = common(conns.map((c) => c.first));
    assert.ok(shared.length > 0, `the ${MANY} lists of one new user share no item`);
    const bought = shared[0];
    const id = await sendEvent(conns[0].client, { kind: 'purchase', item: bought, surface: 'home' });
    const moved = [];
    for (const { client } of conns) moved.push(await client.next((m) => m.type === 'recs' && m.surface === 'home' && m.cause === id, WAIT_MS));
    const r = await post('/api/v1/users/erase', { user });
    assert.equal(r.status, 200, r.text);
    // The purchase is forgotten on every loop: the item a new user's list holds comes back.
    for (const [i, { client }] of conns.entries()) {
      const fresh = await client.next((m) => m.type === 'recs' && m.surface === 'home' && m.version > moved[i].version, WAIT_MS);
      assertRecs(fresh, { surface: 'home', k: moved[i].items.length });
      assert.ok(itemIds(fresh).includes(bought), `connection ${i}: the erased purchase of ${bought} still shapes ${itemIds(fresh)}`);
    }
  });

  test('a rule reaches every loop: a pinned item is pushed first on every list', async () => {
    const conns = [];
    for (let u = 0; u < 4; u++) conns.push(...(await openMany(server, uniqueId('rules'), 5, { k: 10 })));
    // An item no list holds yet, so that every list must change.
    const shown = new Set(conns.flatMap((c) => itemIds(c.first)));
    const pinned = server.items.find((it) => !shown.has(it.id));
    assert.ok(pinned, 'the lists hold every item of the catalog');
    const r = await post('/api/v1/rules', { pins: [{ item: pinned.id, position: 1, surface: 'home' }] });
    assert.equal(r.status, 200, r.text);
    try {
      for (const [i, { client }] of conns.entries()) {
        const pushed = await client.next((m) => m.type === 'recs' && m.surface === 'home' && m.items[0]?.item === pinned.id, WAIT_MS);
        assertRecs(pushed, { surface: 'home', k: 10 });
        assert.equal(pushed.items[0].src, 'pinned', `connection ${i}`);
      }
    } finally {
      assert.equal((await post('/api/v1/rules', {})).status, 200);
    }
  });

  test('a catalog removal reaches every loop: every list that held the item is pushed without it', async () => {
    // Several users, several connections each: sessions on both loops.
    const lists = [];
    const conns = [];
    for (let u = 0; u < 4; u++) {
      const mine = await openMany(server, uniqueId('catalog'), 5, { k: 20 });
      conns.push(...mine);
      lists.push(...mine.map((c) => c.first));
    }
    const shared = common(lists);
    assert.ok(shared.length > 0, 'the lists of new users share no item');
    const gone = shared[0];
    const r = await post('/api/v1/catalog/remove', { ids: [gone] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.removed, 1);
    try {
      for (const [i, { client, first }] of conns.entries()) {
        const pushed = await client.next((m) => m.type === 'recs' && m.surface === 'home' && !itemIds(m).includes(gone), WAIT_MS);
        assertRecs(pushed, { surface: 'home', k: 20 });
        assert.ok(pushed.version > first.version, `connection ${i}: version ${pushed.version} after ${first.version}`);
      }
    } finally {
      // The item comes back for the tests after this one.
      const back = server.items.find((it) => it.id === gone);
      assert.equal((await post('/api/v1/catalog/items', back)).status, 200);
    }
  });

  test('/metrics shows the loops and the models\' writer at work', async () => {
    const first = await metrics(server);
    assert.equal(first.rankcast_loops, LOOPS);
    const { client } = await connectHello(server, 'json', { user: uniqueId('metrics') });
    await client.subscribe('home', { k: 5 });
    await sendEvent(client, { kind: 'click', item: server.items[7].id, surface: 'home' });
    const totals = await metricsUntil(server, (t) => t.rankcast_models_ops_total > (first.rankcast_models_ops_total ?? 0));
    assert.ok(totals.rankcast_models_ops_total > (first.rankcast_models_ops_total ?? 0),
      `rankcast_models_ops_total ${totals.rankcast_models_ops_total} did not grow from ${first.rankcast_models_ops_total}`);
    assert.ok(totals.rankcast_models_publishes_total > 0, 'rankcast_models_publishes_total');
    assert.ok(totals.rankcast_models_apply_seconds_total > 0, 'rankcast_models_apply_seconds_total');
  });
});

describe('--max-conns-per-ip counts the connections of the process, not of a loop', () => {
  const LIMIT = 6;
  const ADDRESS = '127.0.0.31';
  let server;
  before(async () => {
    server = await startServer({ extraArgs: ['--loops', String(LOOPS), '--max-conns-per-ip', String(LIMIT)] });
  });
  after(async () => {
    closeAllClients();
    await stopServerCleanly(server);
  });

  test(`${LIMIT} connections from one address are served, the next ones get 429, whichever loop they reach`, async () => {
    const held = [];
    for (let i = 0; i < LIMIT; i++) held.push(await connect(server, 'json', { localAddress: ADDRESS }));
    // Each attempt reaches a loop the kernel picks: a limit per loop would let some through.
    for (let i = 0; i < LIMIT; i++) {
      const over = await rawUpgrade(server, ADDRESS);
      over.sock.destroy();
      assert.equal(over.status, 429, `attempt ${i + 1} over the limit: ${over.text}`);
    }
    // The connections held are still served.
    for (const c of held) {
      await c.hello({ user: uniqueId('held') });
    }
    // One closed, one more is served (once the server saw the close).
    held.pop().close();
    const deadline = Date.now() + WAIT_MS;
    let status;
    for (;;) {
      const again = await rawUpgrade(server, ADDRESS);
      again.sock.destroy();
      status = again.status;
      if (status === 101 || Date.now() > deadline) break;
      await sleep(50);
    }
    assert.equal(status, 101, 'no connection served after one of the address closed');
  });
});

describe('SIGTERM with connections on every loop', () => {
  test('every connection gets drain and 1001, and the process exits 0 within 5 s', async () => {
    const server = await startServer({ extraArgs: ['--loops', String(LOOPS)] });
    try {
      const conns = await openMany(server, uniqueId('drained'), MANY, { k: 3 });
      const stopped = server.stop(5000);
      for (const [i, { client }] of conns.entries()) {
        await client.next('drain', 5000);
        const { code } = await client.waitClose(5000);
        assert.equal(code, 1001, `connection ${i}`);
      }
      const r = await stopped;
      assert.equal(r.timedOut, false, `no exit within 5 s of SIGTERM\n${server.output()}`);
      assert.equal(r.signal, null, `died of ${r.signal}\n${server.output()}`);
      assert.equal(r.code, 0, server.output());
    } finally {
      closeAllClients();
      await server.stop();
    }
  });
});

// Profiles in a real redis-server: a user's sessions on both loops each write the deltas of
// the events they took, and Redis applies each writer's updates in its order; the loops are
// writers of their own, or one loop's older sequence numbers would be taken for updates
// already applied and dropped.
describe('profiles in Redis with several loops', { skip: redisAvailable() ? false : 'redis-server is not installed' }, () => {
  test('one user on both loops: the profile counts every acknowledged event', async () => {
    const redis = await new Redis().start();
    const server = await startServer({ extraArgs: ['--loops', String(LOOPS), '--redis', redis.url] });
    try {
      const user = uniqueId('redis');
      const conns = await openMany(server, user, LATER);
      const EACH = 10;
      await Promise.all(conns.map(async ({ client }, c) => {
        for (let i = 0; i < EACH; i++) await sendEvent(client, { kind: 'view', item: server.items[(c * EACH + i) % server.items.length].id });
      }));
      for (const { client } of conns) client.close();
      const doc = await eventually(async () => {
        const p = await redis.profile(user);
        return p?.n === LATER * EACH ? p : null;
      }, WAIT_MS, `profile n = ${LATER * EACH}`).catch(async (e) => {
        throw new Error(`${e.message}: n = ${(await redis.profile(user))?.n}`);
      });
      assert.equal(doc.n, LATER * EACH);
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
      await redis.stop();
    }
  });
});

describe('what several loops cannot work with yet is refused at start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rankcast-loops-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const refused = [
    ['--data-dir', ['--data-dir', dir]],
    ['--kafka', ['--kafka', '127.0.0.1:1', '--pseudonym-key', 'loops-test-pseudonym-key-0123456789']],
  ];
  for (const [flag, args] of refused) {
    test(`--loops ${LOOPS} with ${flag}: exits non-zero naming both`, async () => {
      let started = null;
      let error = null;
      try {
        started = await startServer({ extraArgs: ['--loops', String(LOOPS), ...args], readyTimeoutMs: 5000 });
      } catch (e) {
        error = e;
      }
      if (started !== null) await started.stop();
      assert.equal(started, null, `--loops ${LOOPS} with ${flag} started`);
      assert.match(error.message, /exited during start \(\{"code":[1-9]\d*,"signal":null\}\)/, error.message);
      // What the server wrote (after the command line the harness quotes first).
      const output = error.message.slice(error.message.indexOf('\n') + 1);
      const line = output.split('\n').find((l) => /level=error/.test(l)) ?? '';
      assert.ok(line.includes('--loops') && line.includes(flag), `the error does not name --loops and ${flag}: ${output}`);
    });
  }
});

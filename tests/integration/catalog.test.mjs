// SPDX-License-Identifier: Apache-2.0
// The live catalog API against the real server: a removed item leaves the lists it was in
// (they are pushed again at once), an upserted item becomes recommendable, a bad batch changes
// nothing, and the routes need the admin token.

import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';

import { adminRequest, closeAllClients, connectHello, startServer, stopServerCleanly, uniqueId } from './harness.mjs';

const ADMIN = 'it-admin-token';

let server;
before(async () => {
  server = await startServer({ extraArgs: ['--admin-token', ADMIN] });
});
after(async () => {
  closeAllClients();
  await stopServerCleanly(server);
});
afterEach(() => {
  assert.deepEqual(closeAllClients(), []);
});

/** POSTs JSON to the admin API; returns {status, text, json}. */
const post = (path, body, token = ADMIN) => adminRequest(server, 'POST', path, body, token);

test('the catalog routes need the admin token', async () => {
  assert.equal((await post('/api/v1/catalog/remove', { ids: ['x'] }, null)).status, 401);
  assert.equal((await post('/api/v1/catalog/items', { id: 'x' }, 'wrong')).status, 401);
});

for (const enc of ['json', 'msgpack']) {
  test(`${enc}: a removed item leaves the live list at once and never comes back`, async () => {
    const { client } = await connectHello(server, enc, { user: uniqueId('cat') });
    // A few events give the list some personal content.
    client.send({ type: 'event', id: uniqueId('e'), kind: 'click', item: server.items[3].id });
    const first = await client.subscribe('home', { k: 10 });
    const gone = first.items[0].item;
    const r = await post('/api/v1/catalog/remove', { ids: [gone, 'no-such-item'] });
    assert.equal(r.status, 200);
    assert.equal(r.json.removed, 1);
    assert.deepEqual(r.json.unknown, ['no-such-item']);
    // With several loops the count is the lists of the loop that took the request, which
    // need not be the client's (docs/api.md): the push below shows the client's moved.
    if (!process.env.RC_IT_LOOPS) assert.ok(r.json.lists_pushed >= 1, `lists_pushed ${r.json.lists_pushed}`);
    const pushed = await client.next((m) => m.type === 'recs' && m.surface === 'home' && m.version > first.version);
    assert.ok(!pushed.items.some((it) => it.item === gone), `${gone} still in ${JSON.stringify(pushed.items)}`);
    assert.equal(pushed.items.length, 10);
    // A fresh subscription of another user never shows it either.
    const { client: other } = await connectHello(server, enc, { user: uniqueId('cat') });
    const theirs = await other.subscribe('home', { k: 50 });
    assert.ok(!theirs.items.some((it) => it.item === gone));
    // Upserting it again brings it back into the catalog (recommendable again).
    const back = server.items.find((it) => it.id === gone);
    assert.equal((await post('/api/v1/catalog/items', back)).status, 200);
    client.close();
    other.close();
  });
}

test('an upserted item becomes recommendable at once, with its fields', async () => {
  const id = uniqueId('NEW');
  const category = server.items[0].category;
  const r = await post('/api/v1/catalog/items', {
    items: [{ id, name: 'Brand New Lamp', category, tags: ['lamp'], price: 9.5, popularity: 1e9 }],
  });
  assert.equal(r.status, 200);
  assert.equal(r.json.upserted, 1);
  // A cold user's list is led by popularity: the new item, the most popular of all, is in it.
  const { client } = await connectHello(server, 'json', { user: uniqueId('cold') });
  const recs = await client.subscribe('home', { k: 10 });
  const found = recs.items.find((it) => it.item === id);
  assert.ok(found, `${id} not in ${JSON.stringify(recs.items.map((it) => it.item))}`);
  assert.equal(found.name, 'Brand New Lamp');
  assert.equal(found.category, category);
  assert.equal(found.price, 9.5);
  client.close();
});

test('a batch with one bad item changes nothing', async () => {
  const ok = uniqueId('OK');
  const r = await post('/api/v1/catalog/items', { items: [{ id: ok }, { id: 'bad id!' }] });
  assert.equal(r.status, 400);
  assert.match(r.json.error, /item 1/);
  const probe = await post('/api/v1/catalog/remove', { ids: [ok] });
  assert.equal(probe.status, 200);
  assert.deepEqual(probe.json.unknown, [ok], 'the valid item of a refused batch was applied');
  assert.equal((await post('/api/v1/catalog/remove', { idz: [ok] })).status, 400);
});

// Business rules (boosts and pins) through the admin API: live lists are ranked again at once.
test('rules: a pin puts its item first on its surface only, a boost lifts a category, {} clears them', async () => {
  const get = () => adminRequest(server, 'GET', '/api/v1/rules', undefined, ADMIN);
  assert.deepEqual((await get()).json, { boosts: [], pins: [] });
  const { client } = await connectHello(server, 'json', { user: uniqueId('rules') });
  // Clicks in two categories give the list content scores in both.
  const cats = [...new Set(server.items.map((it) => it.category))].slice(-2);
  for (const c of cats) {
    const id = uniqueId('e');
    client.send({ type: 'event', id, kind: 'click', item: server.items.find((it) => it.category === c).id });
    await client.next((m) => m.type === 'ack' && m.ids.includes(id));
  }
  const home = await client.subscribe('home', { k: 10 });
  const side = await client.subscribe('side', { k: 10 });
  const shown = new Set([...home.items, ...side.items].map((it) => it.item));
  const pinned = server.items.filter((it) => !shown.has(it.id)).at(-1).id;
  // Boosts multiply scores: the leader is buried, and a category further down is lifted.
  const buried = home.items[0];
  const lifted = home.items.find((it) => it.category !== buried.category && it.score > 0);
  assert.ok(lifted, JSON.stringify(home.items));
  const category = lifted.category;

  for (const bad of [{ pins: [{ item: pinned }] }, { boosts: [{ category, factor: 0 }] }, { boosts: [], other: 1 }]) {
    const r = await post('/api/v1/rules', bad);
    assert.equal(r.status, 400, JSON.stringify(bad));
    assert.equal(typeof r.json.error, 'string');
  }
  const rules = {
    boosts: [{ category, factor: 10 }, { item: buried.item, factor: 0.01 }],
    pins: [{ item: pinned, position: 1, surface: 'home' }],
  };
  let r = await post('/api/v1/rules', rules);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json, rules);
  assert.deepEqual((await get()).json, r.json);

  const pushed = await client.next((m) => m.type === 'recs' && m.surface === 'home' && m.version > home.version);
  assert.equal(pushed.items[0].item, pinned);
  assert.equal(pushed.items[0].src, 'pinned');
  assert.equal(pushed.items[0].why, 'Featured');
  assert.equal(pushed.items[1].category, category, JSON.stringify(pushed.items));
  const buriedAt = pushed.items.findIndex((it) => it.item === buried.item);
  assert.ok(buriedAt === -1 || buriedAt > 1, `${buried.item} at ${buriedAt}: ${JSON.stringify(pushed.items)}`);
  const sideNow = await client.next((m) => m.type === 'recs' && m.surface === 'side' && m.version > side.version);
  assert.ok(!sideNow.items.some((it) => it.item === pinned), 'the pin is for "home" only');

  r = await post('/api/v1/rules', {});
  assert.equal(r.status, 200);
  const cleared = await client.next((m) => m.type === 'recs' && m.surface === 'home' && m.version > pushed.version);
  assert.ok(!cleared.items.some((it) => it.src === 'pinned'));
  assert.deepEqual((await get()).json, { boosts: [], pins: [] });
});

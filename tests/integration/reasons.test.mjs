// SPDX-License-Identifier: Apache-2.0
// Structured reasons through the real server (PROTOCOL.md, `recs` item `reason`): every item of
// a list carries a reason code and what it refers to (the item of the session that explains it,
// its category, what the user did with it and when), and its `why` is those parts in plain
// words: display names of categories, names of items, never a slug or a locale tag. In both
// encodings.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  FIXTURE_CATEGORY_NAMES,
  adminRequest,
  closeAllClients,
  connectHello,
  reasonWords,
  startServer,
  stopServerCleanly,
  uniqueId,
} from './harness.mjs';

const ADMIN = 'it-admin-token';

let server;
before(async () => {
  server = await startServer({ extraArgs: ['--admin-token', ADMIN] });
});
after(async () => {
  closeAllClients();
  await stopServerCleanly(server);
});

/** Sends an event and waits for its ack. */
async function act(client, kind, item) {
  const id = uniqueId('e');
  client.send({ type: 'event', id, kind, item });
  await client.next((m) => m.type === 'ack' && m.ids.includes(id));
}

const byId = (id) => server.items.find((it) => it.id === id);

/** Asserts what every item's reason says against the catalog and the words of its `why`. */
function assertReasonsOfList(list, actedOn) {
  for (const it of list.items) {
    const r = it.reason;
    assert.ok(r, `no reason: ${JSON.stringify(it)}`);
    assert.equal(it.why, reasonWords(r), JSON.stringify(it));
    // Plain words: no category slug that has a display name, no locale tag.
    for (const slug of Object.keys(FIXTURE_CATEGORY_NAMES)) assert.ok(!it.why.includes(slug), `slug in why: ${it.why}`);
    assert.doesNotMatch(it.why, /\b[a-z]{2}-[A-Z]{2}\b/, `locale tag in why: ${it.why}`);
    if (r.category !== undefined) {
      assert.ok(server.items.some((c) => c.category === r.category), `reason category not in the catalog: ${JSON.stringify(r)}`);
      assert.equal(r.category_name, FIXTURE_CATEGORY_NAMES[r.category], `category_name of ${JSON.stringify(r)}`);
    }
    if (r.item !== undefined) {
      assert.ok(actedOn.includes(r.item), `${r.code} refers to ${r.item}, not an item of the session (${actedOn})`);
      assert.equal(r.item_name, byId(r.item).name);
    }
    if (r.code === 'similar') assert.equal(r.category, byId(r.item).category, 'similar: the category it shares');
    if (r.code === 'similar' || r.code === 'category_affinity') assert.equal(r.category, it.category);
    if (r.code === 'popular' || r.code === 'new_item') assert.equal(r.category, it.category);
  }
}

for (const enc of ['json', 'msgpack']) {
  test(`${enc}: every item carries a structured reason that matches its why`, async () => {
    const [heart, star, lantern] = ['85123A', '21730', '71053'];
    const cakestand = '22423';
    // Others viewed the heart holder and then the star holder: the star is co-visited with it.
    for (let i = 0; i < 3; i++) {
      const { client: other } = await connectHello(server, enc, { user: uniqueId('other') });
      await act(other, 'view', heart);
      await act(other, 'view', star);
      other.close();
    }
    const { client } = await connectHello(server, enc, { user: uniqueId('why'), device: 'mobile' });
    await act(client, 'cart', lantern);
    await act(client, 'view', cakestand);
    await act(client, 'click', heart);
    const actedOn = [lantern, cakestand, heart];

    const discover = await client.subscribe('discover', { k: 20 });
    assert.equal(discover.items.length, 20);
    assertReasonsOfList(discover, actedOn);
    const codes = new Set(discover.items.map((it) => it.reason.code));
    assert.ok(codes.has('co_visited') || codes.has('similar'), `nothing explained by the session: ${[...codes]}`);
    const starItem = discover.items.find((it) => it.item === star);
    assert.ok(starItem, `the co-visited ${star} is not listed`);
    assert.ok(['co_visited', 'similar'].includes(starItem.reason.code), JSON.stringify(starItem));
    assert.equal(starItem.reason.item, heart);

    // The session's items again: what the user did with each and how long ago, as data.
    const recent = await client.subscribe('recent', { k: 20, repeat: 'allowed' });
    assertReasonsOfList(recent, actedOn);
    const carted = recent.items.find((it) => it.item === lantern);
    assert.ok(carted, `${lantern} not shown again: ${JSON.stringify(recent.items.map((it) => it.item))}`);
    assert.equal(carted.src, 'repeat');
    assert.equal(carted.reason.code, 'repeat');
    assert.equal(carted.reason.kind, 'cart');
    assert.ok(carted.reason.age_s >= 0 && carted.reason.age_s < 60, JSON.stringify(carted.reason));
    assert.equal(carted.why, 'You added this to your cart just now');
    const clicked = recent.items.find((it) => it.item === heart);
    assert.deepEqual({ code: clicked.reason.code, kind: clicked.reason.kind }, { code: 'repeat', kind: 'click' });
    assert.equal(clicked.why, 'You viewed this just now');

    // An event pushes a new list: its reasons are made afresh, and match too.
    const id = uniqueId('e');
    client.send({ type: 'event', id, kind: 'view', item: star });
    const pushed = await client.next((m) => m.type === 'recs' && m.surface === 'discover' && m.cause === id);
    assertReasonsOfList(pushed, [...actedOn, star]);
    client.close();
  });
}

test('a category display name reads in why; the reason keeps the category id beside it', async () => {
  // A cold user gets popular items: those of candles-lights read "Popular in Candles & lights".
  const { client } = await connectHello(server, 'json', { user: uniqueId('cold') });
  const list = await client.subscribe('home', { k: 30, category: 'candles-lights' });
  // (Items the other tests made trending say so instead, without a category.)
  const popular = list.items.filter((it) => it.reason.code === 'popular');
  assert.ok(popular.length > 0, JSON.stringify(list.items));
  for (const it of popular) {
    assert.equal(it.reason.category, 'candles-lights', JSON.stringify(it));
    assert.equal(it.reason.category_name, 'Candles & lights');
    assert.equal(it.why, 'Popular in Candles & lights');
  }
  // kitchen has no display name: its name stands, and there is no category_name.
  const kitchen = await client.subscribe('kitchen', { k: 30, category: 'kitchen' });
  const inKitchen = kitchen.items.filter((it) => it.reason.category !== undefined);
  assert.ok(inKitchen.length > 0, JSON.stringify(kitchen.items));
  for (const it of inKitchen) {
    assert.equal(it.reason.category, 'kitchen');
    assert.equal('category_name' in it.reason, false);
    assert.match(it.why, / kitchen$/);
  }
  client.close();
});

test('a pinned item says so as data', async () => {
  const { client } = await connectHello(server, 'msgpack', { user: uniqueId('pin') });
  const home = await client.subscribe('pinned-home', { k: 5 });
  const pinned = server.items[40].id;
  const r = await adminRequest(server, 'POST', '/api/v1/rules', { pins: [{ item: pinned, position: 1, surface: 'pinned-home' }] }, ADMIN);
  assert.equal(r.status, 200, r.text);
  const pushed = await client.next((m) => m.type === 'recs' && m.surface === 'pinned-home' && m.version > home.version);
  assert.equal(pushed.items[0].item, pinned);
  assert.deepEqual(pushed.items[0].reason, { code: 'pinned' });
  assert.equal(pushed.items[0].why, 'Featured');
  assert.equal((await adminRequest(server, 'POST', '/api/v1/rules', {}, ADMIN)).status, 200);
  client.close();
});

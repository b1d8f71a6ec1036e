// SPDX-License-Identifier: Apache-2.0
// Clients naming made-up item ids (issue S): by default the catalog is closed to them (4012);
// opened with --catalog-open, an id becomes an item only once enough distinct users named it,
// learned items are capped, and the admin API always keeps room for real items.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { adminRequest, closeAllClients, connectHello, httpGet, parsePrometheus, metricTotals, sleep, startServer, stopServerCleanly, uniqueId } from './harness.mjs';

const ADMIN = 'catalog-hardening-admin';

/** The answer to one event on `item`: 'ack' or the error code. */
async function tryItem(client, item, kind = 'click') {
  const id = uniqueId('ev');
  client.send({ type: 'event', id, kind, item });
  const m = await client.next((x) => (x.type === 'ack' && x.ids.includes(id)) || (x.type === 'error' && x.id === id), 5000);
  return m.type === 'ack' ? 'ack' : m.code;
}

async function metric(server, name) {
  return metricTotals(parsePrometheus((await httpGet(server, '/metrics')).body).samples)[name];
}

/** A new anonymous visitor names `item` `times` times and leaves; returns the answers. */
async function visitorNames(server, item, times = 1) {
  const { client } = await connectHello(server, 'json', { user: uniqueId('anon-v') });
  const answers = [];
  for (let i = 0; i < times; i++) answers.push(await tryItem(client, item));
  client.close();
  return answers;
}

describe('closed by default', () => {
  let server;
  before(async () => {
    server = await startServer({ extraArgs: ['--admin-token', ADMIN] });
  });
  after(async () => {
    closeAllClients();
    await stopServerCleanly(server);
  });

  test('an event on an id not in the catalog gets 4012 and creates nothing', async () => {
    const before = await metric(server, 'rankcast_catalog_items');
    const { client } = await connectHello(server, 'json', { user: uniqueId('anon-c') });
    for (let i = 0; i < 5; i++) assert.equal(await tryItem(client, uniqueId('made-up')), 4012);
    assert.equal(await tryItem(client, server.items[0].id), 'ack');
    assert.equal(await metric(server, 'rankcast_catalog_items'), before);
    // The operator's way in is unchanged.
    const r = await adminRequest(server, 'POST', '/api/v1/catalog/items', { id: uniqueId('real'), name: 'Real Item', category: 'kitchen' }, ADMIN);
    assert.equal(r.status, 200, r.text);
  });
});

describe('opened with --catalog-open', () => {
  let server;
  before(async () => {
    server = await startServer({ extraArgs: ['--admin-token', ADMIN, '--catalog-open', '--catalog-learned-max', '3'] });
  });
  after(async () => {
    closeAllClients();
    await stopServerCleanly(server);
  });

  test('30 anonymous clients naming made-up ids fill no list and no catalog', { timeout: 60000 }, async () => {
    const before = await metric(server, 'rankcast_catalog_items');
    const junk = [];
    // The attack of issue S: each client clicks its own made-up ids, many times.
    for (let c = 0; c < 30; c++) {
      const { client } = await connectHello(server, 'json', { user: uniqueId('anon-attacker') });
      for (let i = 0; i < 4; i++) {
        const id = `junk-${c}-${i}`;
        junk.push(id);
        for (let k = 0; k < 5; k++) assert.equal(await tryItem(client, id), 'ack'); // accepted, not learned
      }
      client.close();
    }
    assert.equal(await metric(server, 'rankcast_catalog_items'), before);
    assert.ok((await metric(server, 'rankcast_catalog_untrusted_events_total')) >= 600);
    await sleep(1200); // two trending refreshes
    const { client } = await connectHello(server, 'json', { user: uniqueId('anon-new-visitor') });
    const recs = await client.subscribe('home', { k: 20 });
    assert.deepEqual(recs.items.filter((it) => junk.includes(it.item)), []);
    client.close();
  });

  test('an id three distinct users name is learned and reaches other users\' lists', { timeout: 30000 }, async () => {
    const fresh = uniqueId('new-arrival');
    const before = await metric(server, 'rankcast_catalog_items');
    for (let u = 0; u < 3; u++) await visitorNames(server, fresh, 3);
    assert.equal(await metric(server, 'rankcast_catalog_items'), before + 1);
    assert.equal(await metric(server, 'rankcast_catalog_learned_items'), 1);
    // More of its traffic: it trends for a new visitor.
    for (let u = 0; u < 6; u++) await visitorNames(server, fresh, 5);
    const deadline = Date.now() + 8000;
    for (;;) {
      const { client } = await connectHello(server, 'json', { user: uniqueId('anon-next') });
      const recs = await client.subscribe('home', { k: 20 });
      client.close();
      if (recs.items.some((it) => it.item === fresh)) break;
      assert.ok(Date.now() < deadline, `${fresh} never reached a new visitor's list`);
      await sleep(300);
    }
  });

  test('learned items are capped (--catalog-learned-max); the admin API still adds items', async () => {
    for (let i = 0; i < 4; i++) {
      const id = uniqueId('popular');
      for (let u = 0; u < 3; u++) await visitorNames(server, id);
    }
    assert.equal(await metric(server, 'rankcast_catalog_learned_items'), 3);
    const r = await adminRequest(server, 'POST', '/api/v1/catalog/items', { id: uniqueId('real'), name: 'Real Item', category: 'kitchen' }, ADMIN);
    assert.equal(r.status, 200, r.text);
  });
});

test('--catalog-learned-max must leave the admin API room', async () => {
  await assert.rejects(startServer({ extraArgs: ['--catalog-open', '--max-items', '100', '--catalog-learned-max', '100'], readyTimeoutMs: 3000 }), /must be below --max-items/);
});

// SPDX-License-Identifier: Apache-2.0
// Sessions against made-up context (issue S): locale tags named in hello by anonymous clients
// must not take the locale segments of trending for the life of the process; a real market's
// visitors still get their locale's trending.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { closeAllClients, connectHello, sleep, startServer, stopServerCleanly, uniqueId } from './harness.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  closeAllClients();
  await stopServerCleanly(server);
});

/** Sends one event per item and waits for all their acks. */
async function clickAll(client, items, prefix) {
  const ids = items.map((item, i) => {
    const id = `${prefix}-${i}`;
    client.send({ type: 'event', id, kind: 'click', item });
    return id;
  });
  const left = new Set(ids);
  while (left.size > 0) {
    const m = await client.next((x) => x.type === 'ack' || (x.type === 'error' && left.has(x.id)), 10000);
    assert.equal(m.type, 'ack', JSON.stringify(m));
    for (const id of m.ids) left.delete(id);
  }
}

/** A session in `locale` that clicks `items` and leaves. */
async function visit(locale, items, user = uniqueId('anon-v')) {
  const { client } = await connectHello(server, 'json', { user, locale });
  await clickAll(client, items, uniqueId('e'));
  client.close();
}

const itemsOf = (category) => server.items.filter((it) => it.category === category).map((it) => it.id);

describe('locale segments are earned by real traffic', () => {
  // First, while every segment is free (before the fix, the first tags met took them).
  test('a locale named by a handful of users never earns a segment', async () => {
    const items = itemsOf('kitchen').slice(0, 3);
    for (let u = 0; u < 3; u++) await visit('yy-FAKE', items);
    await sleep(1200); // two trending refreshes
    const { client } = await connectHello(server, 'json', { user: uniqueId('anon-probe'), locale: 'yy-FAKE' });
    const recs = await client.subscribe('home', { k: 10 });
    assert.deepEqual(recs.items.filter((it) => /yy-fake/i.test(it.why ?? '')), []);
  });

  test('made-up locales, however many, leave a real market its locale trending', { timeout: 60000 }, async () => {
    // The attack of issue S, and more: 40 made-up locales named by anonymous clients, each
    // clicking around, plus 8 of them with enough distinct users to earn a segment each, so
    // that every segment is taken when the real market arrives.
    const junk = itemsOf('bags').slice(0, 2);
    for (let l = 0; l < 40; l++) await visit(`zz-X${l}`, junk);
    for (let l = 0; l < 8; l++) {
      for (let u = 0; u < 5; u++) await visit(`qq-Q${l}`, junk);
    }
    // The real market: 8 visitors in de-DE, three clicks each on the same stationery.
    const targets = itemsOf('stationery').slice(0, 3);
    for (let u = 0; u < 8; u++) await visit('de-DE', targets);
    // Trending is rebuilt every 500 ms: a cold visitor from that market sees it, by its tag.
    const deadline = Date.now() + 10000;
    let last = null;
    for (;;) {
      const { client } = await connectHello(server, 'json', { user: uniqueId('anon-cold'), locale: 'de_de' });
      const recs = await client.subscribe('home', { k: 10 });
      client.close();
      last = recs.items.filter((it) => targets.includes(it.item)).map((it) => `${it.item}: ${it.reason.code} ${it.reason.locale}`);
      if (last.length === targets.length && last.every((s) => s.endsWith('trending_locale de-DE'))) break;
      assert.ok(Date.now() < deadline, `no locale trending for de-DE: ${JSON.stringify(last)}`);
      await sleep(300);
    }
  });

});

// SPDX-License-Identifier: Apache-2.0
// The repeat policy of a subscription (PROTOCOL.md, subscribe `repeat`) through the real
// server: by default a list never shows an item of the session again; with "allowed" the
// item in view comes back (src "repeat", its reason saying when), with "not_current" the
// session's other items do but not that one; a purchase never returns; a policy the
// protocol does not know is refused with 4002.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { closeAllClients, connectHello, startServer, stopServerCleanly, uniqueId } from './harness.mjs';

let server;
before(async () => {
  server = await startServer();
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

for (const enc of ['json', 'msgpack']) {
  test(`${enc}: each surface gets the session's items as its policy says`, async () => {
    const { client } = await connectHello(server, enc, { user: uniqueId('rep') });
    const [bought, seen, current] = [server.items[2], server.items[14], server.items[27]];
    await act(client, 'purchase', bought.id);
    await act(client, 'click', seen.id);
    await act(client, 'view', current.id);
    const never = await client.subscribe('discover', { k: 10 });
    const beside = await client.subscribe('beside', { k: 10, repeat: 'not_current' });
    const again = await client.subscribe('continue', { k: 10, repeat: 'allowed' });
    const ids = (list) => list.items.map((it) => it.item);

    for (const it of [bought, seen, current]) assert.ok(!ids(never).includes(it.id), `${it.id} in the discovery list`);
    assert.ok(ids(beside).includes(seen.id), 'not_current shows the session\'s other items');
    assert.ok(!ids(beside).includes(current.id), 'not_current leaves out the item in view');
    assert.equal(again.items[0].item, current.id, 'allowed puts the item in view first');
    assert.equal(again.items[0].src, 'repeat');
    assert.match(again.items[0].why, /^You viewed this (just now|\d+ minutes? ago)$/);
    for (const list of [beside, again]) assert.ok(!ids(list).includes(bought.id), 'a purchase came back');
  });
}

test('a repeat policy the protocol does not know is refused', async () => {
  const { client } = await connectHello(server, 'json', { user: uniqueId('rep') });
  client.send({ type: 'subscribe', surface: 'home', repeat: 'sometimes' });
  const err = await client.nextError(4002);
  assert.match(err.message, /repeat/);
});

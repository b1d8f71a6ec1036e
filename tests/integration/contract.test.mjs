// SPDX-License-Identifier: Apache-2.0
// The contract as a client writer meets it (PROTOCOL.md sections 2 and 5), against the real
// binary: an event's ack comes after every list it changed, so a client knows when no list is
// coming (with acks at once, and with acks that wait for fsync); what a reconnect with the
// same user id keeps; and what "this session" means for consent: false.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import {
  closeAllClients,
  connectHello,
  httpGet,
  metricTotals,
  parsePrometheus,
  startServer,
  stopServerCleanly,
  uniqueId,
} from './harness.mjs';

/**
 * Sends `msg` (an event or a batch) and collects what arrives up to its ack (of `ackId`), then
 * a ping round trip more: whatever the event caused and came after its ack would be in `late`.
 */
async function sendUntilAck(client, msg, ackId) {
  const from = client.log.length;
  client.send(msg);
  await client.next((m) => m.type === 'ack' && m.ids.includes(ackId), 5000);
  const ackAt = client.log.findIndex((m, i) => i >= from && m.type === 'ack' && m.ids.includes(ackId));
  await client.roundTrip();
  return { before: client.log.slice(from, ackAt), late: client.log.slice(ackAt + 1) };
}

const recsOf = (msgs, cause) => msgs.filter((m) => m.type === 'recs' && (cause === undefined || m.cause === cause));

for (const [label, extra] of [['acks at once (no log)', []], ['acks after fsync (--data-dir)', ['--data-dir']]]) {
  describe(`an ack comes after the lists its event changed: ${label}`, () => {
    let server;
    let dir;
    after(async () => {
      closeAllClients();
      await stopServerCleanly(server);
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('every list an event changed arrives before its ack; an event that changes none gets only the ack', async () => {
      const args = [];
      if (extra.length > 0) {
        dir = mkdtempSync(join(tmpdir(), 'rankcast-contract-'));
        args.push('--data-dir', dir, '--fsync', 'always');
      }
      server = await startServer({ extraArgs: args });
      for (const enc of ['json', 'msgpack']) {
        const { client } = await connectHello(server, enc, { user: uniqueId('order') });
        let home = await client.subscribe('home', { k: 6 });
        await client.subscribe('recent', { k: 6, repeat: 'allowed' });
        let changed = 0;
        for (let i = 0; i < 12; i++) {
          // A purchase of the first item changes "home" (a purchased item never comes back);
          // the other kinds may or may not change a list, which is what the ack settles.
          const kinds = ['purchase', 'view', 'impression', 'click'];
          const kind = kinds[i % kinds.length];
          const item = kind === 'purchase' ? home.items[0].item : server.items[(i * 7) % server.items.length].id;
          const id = uniqueId('ev');
          const { before, late } = await sendUntilAck(client, { type: 'event', id, kind, item, surface: 'home' }, id);
          assert.deepEqual(recsOf(late, id), [], `${kind}: a list caused by ${id} came after its ack`);
          const caused = recsOf(before, id);
          if (kind === 'impression') assert.deepEqual(caused, [], 'an impression changes no list');
          if (kind === 'purchase') {
            const h = caused.find((m) => m.surface === 'home');
            assert.ok(h, 'a purchase of the first item of home changed home before the ack');
            assert.ok(!h.items.some((it) => it.item === item));
          }
          for (const r of caused) if (r.surface === 'home') home = r;
          changed += caused.length;
          // A retry of an acknowledged event is acknowledged again and changes nothing.
          const again = await sendUntilAck(client, { type: 'event', id, kind, item, surface: 'home' }, id);
          assert.deepEqual(recsOf(again.before), [], 'a retry re-ranked a list');
          assert.deepEqual(recsOf(again.late), []);
        }
        assert.ok(changed >= 3, `only ${changed} lists changed in 12 events`);

        // A batch re-ranks once: its lists (caused by its last changing event) precede its ack.
        const ids = [uniqueId('b'), uniqueId('b'), uniqueId('b')];
        const events = ids.map((id, j) => ({ id, kind: j === 2 ? 'purchase' : 'view', item: j === 2 ? home.items[0].item : server.items[j + 30].id }));
        const from = client.log.length;
        client.send({ type: 'events', events });
        await client.next((m) => m.type === 'ack' && ids.every((id) => m.ids.includes(id)), 5000);
        await client.roundTrip();
        const after = client.log.slice(from);
        const ackAt = after.findIndex((m) => m.type === 'ack');
        const batchRecs = recsOf(after).filter((m) => ids.includes(m.cause));
        assert.ok(batchRecs.some((m) => m.surface === 'home' && m.cause === ids[2]), 'the batch changed home');
        for (const r of batchRecs) assert.ok(after.indexOf(r) < ackAt, 'a list of the batch came after its ack');
        client.close();
      }
    });
  });
}

describe('sessions across reconnects, and consent: false', () => {
  let server;
  after(async () => {
    closeAllClients();
    await stopServerCleanly(server);
  });

  async function sessions() {
    const { body } = await httpGet(server, '/metrics');
    return metricTotals(parsePrometheus(body).samples).rankcast_sessions;
  }

  async function untilNoSessions() {
    const t0 = Date.now();
    while ((await sessions()) !== 0) {
      assert.ok(Date.now() - t0 < 10_000, 'sessions never dropped');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A user who bought the first item of their home list; returns the item. */
  async function buyFirst(user, consent) {
    const { client } = await connectHello(server, 'json', { user, consent });
    const home = await client.subscribe('home', { k: 8 });
    const item = home.items[0].item;
    const id = uniqueId('buy');
    client.send({ type: 'event', id, kind: 'purchase', item });
    await client.next((m) => m.type === 'ack' && m.ids.includes(id));
    return { client, item, id };
  }

  test('a reconnect within --session-idle-s finds the session; consent: false keeps nothing once it is dropped; consent keeps the profile', async () => {
    server = await startServer({ extraArgs: ['--session-idle-s', '1'] });
    const anonymous = uniqueId('noconsent');
    const remembered = uniqueId('consent');
    const a = await buyFirst(anonymous, false);
    const b = await buyFirst(remembered, true);
    a.client.close();
    b.client.close();

    // Within the idle time: the same session, whatever the consent. The purchase is still
    // excluded, and a retry of its event is acknowledged without being applied again.
    const { client: back } = await connectHello(server, 'json', { user: anonymous, consent: false });
    const again = await back.subscribe('home', { k: 8 });
    assert.ok(!again.items.some((it) => it.item === a.item), 'the session forgot the purchase');
    back.send({ type: 'event', id: a.id, kind: 'purchase', item: a.item });
    await back.next((m) => m.type === 'ack' && m.ids.includes(a.id));
    back.close();

    await untilNoSessions();
    // consent: false: "this session" is gone, and nothing of it was kept for the user. The
    // item, bought by two users, is now the most trending: a fresh session shows it again.
    const { client: fresh } = await connectHello(server, 'json', { user: anonymous, consent: false });
    const first = await fresh.subscribe('home', { k: 8 });
    assert.ok(first.items.some((it) => it.item === a.item), `a session without consent kept ${a.item} out after it was dropped`);
    // With consent, the stored profile comes back, and with it the exclusion of the purchase.
    const { client: known } = await connectHello(server, 'json', { user: remembered });
    let list = await known.subscribe('home', { k: 8 });
    while (list.items.some((it) => it.item === b.item)) list = await known.next((m) => m.type === 'recs' && m.surface === 'home');
  });
});

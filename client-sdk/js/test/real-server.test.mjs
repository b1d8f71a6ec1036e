// SPDX-License-Identifier: Apache-2.0
// End to end against the real rankcast binary, in both subprotocols: subscribe, track, lists
// re-ranked with `cause` = the tracked event's id, filters, and the server restarting mid-
// session (a crash, and a graceful drain) with the client resuming: the lists come back and
// the events tracked meanwhile are acknowledged after the reconnect. Skipped, with the reason,
// only when the binary is missing (RANKCAST_BIN overrides its path).

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';

import { ServerError } from '../src/index.js';

import { waitUntil } from '../test-support/fake-server.mjs';
import { ENCODINGS, closeAllClients, makeClient, nextEvent } from '../test-support/helpers.mjs';
import { RANKCAST_CATALOG, RankcastProcess, freePort, missingBinaryReason } from '../test-support/rankcast-process.mjs';

const skip = missingBinaryReason();
if (skip) console.log(`# real-server tests skipped: ${skip}`);

let userCounter = 0;
const uniqueUser = (prefix) => `${prefix}-${process.pid}-${++userCounter}`;

/** Catalog items of `category`, in file order (to click on things the server knows). */
function catalogItems(category) {
  return readFileSync(RANKCAST_CATALOG, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line))
    .filter((it) => it.category === category)
    .map((it) => it.id);
}

/**
 * Clicks the given items one at a time until `watcher` delivers a list caused by one of the
 * clicks (an event re-ranks only the lists it changes, so one click may change none). Returns
 * {id, list}.
 */
async function clickUntilReranked(client, watcher, items, surface) {
  for (const item of items) {
    const click = client.track({ kind: 'click', item, surface });
    const caused = nextEvent(watcher, 'recs', { filter: (l) => l.cause === click.id, timeoutMs: 1000 }).catch(() => null);
    assert.equal(await click, click.id);
    const list = await caused;
    if (list) return { id: click.id, list };
  }
  throw new Error(`none of ${items.length} clicks re-ranked a list`);
}

/** Fast reconnects for the tests, and the real server's own limits. */
const clientOptions = (extra = {}) => ({ reconnect: { baseMs: 50, capMs: 250 }, drainJitterMs: 100, ...extra });

describe('real rankcast', { skip: skip ?? false, timeout: 60_000 }, () => {
  let rc;
  before(async () => {
    rc = await new RankcastProcess(await freePort()).start();
  });
  after(async () => {
    await rc?.stop('SIGTERM');
  });
  afterEach(closeAllClients);

  for (const enc of ENCODINGS) {
    test(`${enc}: subscribe, track, and lists re-ranked with cause = the tracked event id`, async () => {
      const client = makeClient(rc.url, enc, clientOptions({ user: uniqueUser('e2e'), pingIntervalMs: 20 }));
      const welcome = await nextEvent(client, 'open');
      assert.equal(welcome.v, 1);
      assert.equal(welcome.limits.maxBatch, 100);
      const lists = [];
      const sub = client.subscribe('home', { k: 5 }, (l) => lists.push(l));
      await waitUntil(() => lists.length >= 1, { what: 'the first list' });
      const first = lists[0];
      assert.equal(first.surface, 'home');
      assert.equal(first.cause, undefined, 'the list sent on subscribe has no cause');
      assert.equal(first.items.length, 5);
      for (const it of first.items) {
        assert.equal(typeof it.item, 'string');
        assert.equal(typeof it.score, 'number');
        assert.ok(['covisit', 'content', 'trending', 'popular', 'explore'].includes(it.src), it.src);
        assert.ok(it.why.length > 0);
        // The structured reason, read into camelCase: a cold user's list is popular or trending.
        assert.ok(['popular', 'trending', 'trending_context', 'trending_locale'].includes(it.reason?.code), JSON.stringify(it));
        if (it.reason.code === 'popular') assert.equal(it.reason.category, it.category);
      }

      // A click on a recommended item: acked, and the list comes back re-ranked by it.
      const click = client.trackClick(first, first.items[0]);
      const caused = nextEvent(client, 'recs', { filter: (l) => l.cause === click.id, timeoutMs: 5000 });
      assert.equal(await click, click.id);
      const reranked = await caused;
      assert.equal(reranked.surface, 'home');
      assert.ok(reranked.version > first.version, 'a newer version');
      assert.equal(sub.latest.version >= reranked.version, true);

      // Three events in one window go out as one `events` message and are all acked.
      const sentBefore = client.stats().sentMessages;
      const items = first.items.slice(1, 4).map((it) => it.item);
      const ids = await Promise.all(items.map((item) => client.track({ kind: 'view', item, surface: 'home' })));
      assert.equal(ids.length, 3);
      assert.equal(client.stats().sentMessages - sentBefore, 1);

      // Every kind the page lists is accepted.
      await Promise.all([
        client.track({ kind: 'search', query: 'heart' }),
        client.track({ kind: 'rating', item: items[0], value: 4 }),
        client.track({ kind: 'dwell', item: items[0], value: 5400 }),
        client.track({ kind: 'cart', item: items[1], value: 2 }),
        client.track({ kind: 'purchase', item: items[1] }),
        client.track({ kind: 'dismiss', item: items[2] }),
        client.trackImpressions(sub.latest),
      ]);
      assert.equal(client.stats().queued, 0);
      // The keepalive: pong echoes the ping's t, so a round trip is measured.
      await waitUntil(() => client.stats().rttMs !== null, { what: 'a keepalive round trip' });
      await client.close();
    });

    test(`${enc}: filtered lists, several surfaces, and two clients of one user in step`, async () => {
      const user = uniqueUser('pair');
      const a = makeClient(rc.url, enc, clientOptions({ user }));
      const b = makeClient(rc.url, enc, clientOptions({ user }));
      const kitchen = [];
      a.subscribe('pdp', { k: 4, category: 'kitchen', priceMax: 10 }, (l) => kitchen.push(l));
      const bHome = [];
      b.subscribe('home', { k: 3 }, (l) => bHome.push(l));
      await waitUntil(() => kitchen.length >= 1 && bHome.length >= 1, { what: 'both lists' });
      for (const it of kitchen[0].items) {
        assert.equal(it.category, 'kitchen');
        assert.ok(it.price <= 10, `${it.item} costs ${it.price}`);
      }
      // An event on one connection re-ranks the other connection's list.
      const { list } = await clickUntilReranked(a, b, catalogItems('candles-lights').slice(0, 10), 'pdp');
      assert.equal(list.surface, 'home');
      await Promise.all([a.close(), b.close()]);
    });
  }

  test('a closed catalog refuses an unknown item: track() rejects with ServerError 4012; tight limits are kept', async () => {
    const node = await new RankcastProcess(await freePort(), ['--catalog-open', 'false', '--events-per-sec', '10', '--events-burst', '5', '--max-batch', '4']).start();
    try {
      for (const enc of ENCODINGS) {
        const client = makeClient(node.url, enc, clientOptions({ user: uniqueUser('limits') }));
        const errors = [];
        client.on('error', (e) => errors.push(e));
        const welcome = await nextEvent(client, 'open');
        assert.deepEqual([welcome.limits.eventsPerSec, welcome.limits.eventsBurst, welcome.limits.maxBatch], [10, 5, 4]);
        const unknown = client.track({ kind: 'view', item: 'NO-SUCH-ITEM' });
        await assert.rejects(unknown, (e) => {
          assert.ok(e instanceof ServerError, String(e));
          assert.equal(e.code, 4012);
          assert.equal(e.codeName, 'unknown_item');
          assert.equal(e.eventId, unknown.id);
          assert.equal(e.fatal, false);
          return true;
        });
        // 12 events at 10/s with a burst of 5 (one token went to the refused event): the
        // client paces them, so the server never answers rate_limited.
        const items = catalogItems('kitchen').slice(0, 12);
        const t0 = performance.now();
        await Promise.all(items.map((item) => client.track({ kind: 'view', item })));
        const elapsed = performance.now() - t0;
        assert.ok(elapsed >= 500, `12 events at 10/s took only ${elapsed.toFixed(0)} ms`);
        assert.deepEqual(errors.map((e) => e.code), [4012], 'no 4020 or 4022 from the server');
        await client.close();
      }
    } finally {
      await node.stop('SIGTERM');
    }
  });

  test('tokens: the subject is the user, refreshed ahead of exp, refreshToken() extends a live session, a 4011 gets a fresh token from the provider', async () => {
    const secret = 'sdk-test-secret-0123456789abcdef0123';
    const node = await new RankcastProcess(await freePort(), ['--anonymous', 'false', '--jwt-secret', secret, '--jwt-leeway-s', '0']).start();
    const sign = (sub, ttlS) => {
      const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + ttlS })}`;
      return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
    };
    try {
      const user = uniqueUser('jwt');
      const asked = [];
      const client = makeClient(node.url, 'json', clientOptions({
        user: undefined,
        tokenProvider: ({ reason }) => {
          asked.push(reason);
          // The first automatic refresh fails: that session's 2 s token runs out.
          if (reason === 'refresh' && asked.filter((r) => r === 'refresh').length === 1) throw new Error('auth service down');
          return sign(user, reason === 'refresh' ? 600 : 2);
        },
      }));
      const welcome = await nextEvent(client, 'open');
      assert.equal(welcome.user, user);
      // The first token lives 2 s and is not refreshed: the server ends the session with 4011 at
      // the next message, and the client reconnects with a fresh token from the provider.
      await new Promise((r) => setTimeout(r, 2200));
      const reopened = nextEvent(client, 'open', { timeoutMs: 5000 });
      await client.track({ kind: 'view', item: catalogItems('kitchen')[0] }).catch(() => {});
      await reopened;
      assert.deepEqual(asked.slice(0, 3), ['initial', 'refresh', 'unauthorized']);
      // The second 2 s token is refreshed ahead of its exp (at half-life) with `auth`: the
      // session outlives it, with no reconnect.
      const welcomes = client.stats().welcomes;
      await new Promise((r) => setTimeout(r, 2200));
      assert.equal(await client.track({ kind: 'view', item: catalogItems('kitchen')[1] }).then(() => 'acked'), 'acked');
      assert.equal(client.stats().welcomes, welcomes, 'no reconnect: the token was refreshed in the session');
      assert.deepEqual(asked.slice(0, 4), ['initial', 'refresh', 'unauthorized', 'refresh']);
      const info = await client.refreshToken();
      assert.ok(info.expMs > Date.now() + 500_000, JSON.stringify(info));
      assert.equal(asked.at(-1), 'refresh');
      await assert.rejects(client.refreshToken(sign('someone-else', 600)), (e) => e instanceof ServerError && e.code === 4010);
      await client.close();
    } finally {
      await node.stop('SIGTERM');
    }
  });

  for (const enc of ENCODINGS) {
    for (const how of ['crash', 'drain']) {
      test(`${enc}: the server restarts mid-session (${how}); the client resumes, lists come back, unacked events are acked`, async () => {
        const port = await freePort();
        const node = await new RankcastProcess(port, ['--drain-ms', '500']).start();
        try {
          const client = makeClient(node.url, enc, clientOptions({ user: uniqueUser(`restart-${how}`) }));
          await nextEvent(client, 'open');
          const home = [];
          const pdp = [];
          client.subscribe('home', { k: 5 }, (l) => home.push(l));
          client.subscribe('pdp', { k: 3, category: 'home-decor' }, (l) => pdp.push(l));
          await waitUntil(() => home.length >= 1 && pdp.length >= 1, { what: 'the first lists' });
          const before = { home: home.length, pdp: pdp.length };
          const item = home[0].items[0].item;

          const lost = nextEvent(client, 'reconnecting', { timeoutMs: 5000 });
          const drained = how === 'drain' ? nextEvent(client, 'drain', { timeoutMs: 5000 }) : null;
          // Events sent just before the end: on a crash some may never be acked by this server.
          const early = [client.track({ kind: 'view', item }), client.track({ kind: 'cart', item })];
          await node.stop(how === 'crash' ? 'SIGKILL' : 'SIGTERM');
          if (drained) assert.equal((await drained).reason, 'shutdown');
          const reconnecting = await lost;
          if (how === 'drain') assert.equal(reconnecting.code, 1001);

          // While the server is down, events wait in the queue.
          const offline = [client.track({ kind: 'click', item, surface: 'home' }), client.track({ kind: 'search', query: 'lantern' })];
          assert.ok(client.stats().queued >= 2);
          const reopening = nextEvent(client, 'open', { timeoutMs: 10_000 });
          await node.start();
          const reopened = await reopening;
          assert.equal(reopened.user, client.user);
          const ids = await Promise.all([...early, ...offline]);
          assert.deepEqual(ids, [...early, ...offline].map((p) => p.id));
          await waitUntil(() => home.length > before.home && pdp.length > before.pdp, { timeoutMs: 5000, what: 'lists after resume' });
          for (const it of pdp.at(-1).items) assert.equal(it.category, 'home-decor', 'the filter was sent again');
          // The resumed session re-ranks on new events as before.
          await clickUntilReranked(client, client, catalogItems('christmas').slice(0, 10), 'home');
          assert.equal(client.stats().queued, 0);
          await client.close();
        } finally {
          await node.stop('SIGKILL');
        }
      });
    }
  }

  for (const enc of ENCODINGS) {
    test(`${enc}: a compact subscription delivers the same whole lists as a plain one, across a reconnect`, async () => {
      const port = await freePort();
      const node = await new RankcastProcess(port).start();
      try {
        const user = uniqueUser('compact');
        const plain = makeClient(node.url, enc, clientOptions({ user }));
        const compact = makeClient(node.url, enc, clientOptions({ user }));
        await Promise.all([nextEvent(plain, 'open'), nextEvent(compact, 'open')]);
        /** @type {Map<number, unknown>} */
        const plainByVersion = new Map();
        const compactLists = [];
        plain.subscribe('home', { k: 20 }, (l) => plainByVersion.set(l.version, l));
        compact.subscribe('home', { k: 20, compact: true }, (l) => compactLists.push(l));
        await waitUntil(() => plainByVersion.size >= 1 && compactLists.length >= 1, { what: 'the first lists' });
        const errors = [];
        compact.on('error', (e) => errors.push(e));
        // Clicks on the list shown: each leaves the list, so each re-ranks it.
        for (let i = 0; i < 12; i++) {
          const shown = compactLists.at(-1).items;
          const click = plain.track({ kind: 'click', item: shown[(i * 5) % shown.length].item, surface: 'home' });
          await click;
          await waitUntil(() => compactLists.some((l) => l.cause === click.id) && [...plainByVersion.values()].some((l) => l.cause === click.id), { what: `the lists of click ${i}` });
        }
        let compared = 0;
        for (const list of compactLists) {
          const whole = plainByVersion.get(list.version);
          if (!whole) continue;
          assert.deepEqual(list, whole, `version ${list.version}`);
          compared++;
        }
        assert.ok(compared >= 12, `${compared} lists compared`);
        assert.ok(compactLists.every((l) => l.items.length === 20 && l.items.every((it) => it.reason && it.name && it.why)));

        // The server restarts: the compact client starts afresh on the new connection.
        const before = compactLists.length;
        const reopened = nextEvent(compact, 'open', { timeoutMs: 10_000 });
        await node.stop('SIGKILL');
        await node.start();
        await reopened;
        await waitUntil(() => compactLists.length > before, { timeoutMs: 5000, what: 'the list after the reconnect' });
        assert.ok(compactLists.at(-1).items.every((it) => it.name && it.reason), 'details and reasons again');
        assert.deepEqual(errors, []);
        await Promise.all([plain.close(), compact.close()]);
      } finally {
        await node.stop('SIGKILL');
      }
    });

    test(`${enc}: without a user, the issued (signed) id is presented again after a restart and stays the user; a made-up one is replaced`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'rankcast-js-anon-'));
      const node = await new RankcastProcess(await freePort(), ['--anonymous-ids', 'signed', '--data-dir', dir]).start();
      try {
        const client = makeClient(node.url, enc, clientOptions({ user: undefined }));
        const first = await nextEvent(client, 'open');
        assert.match(first.user, /^anon-[0-9a-f]{24}\.[0-9a-f]{32}$/);
        const reopening = nextEvent(client, 'open', { timeoutMs: 10_000 });
        await node.stop('SIGKILL');
        await node.start();
        assert.equal((await reopening).user, first.user, 'the server took the id back: the same visitor');
        await client.close();

        // An id the server did not issue (say, stored from another deployment): 4013, then a fresh id.
        const stale = makeClient(node.url, enc, clientOptions({ user: 'anon-0123456789abcdef' }));
        const refused = nextEvent(stale, 'error', { filter: (e) => e instanceof ServerError && e.code === 4013 });
        const opened = await nextEvent(stale, 'open');
        await refused;
        assert.match(opened.user, /^anon-[0-9a-f]{24}\.[0-9a-f]{32}$/);
        assert.equal(stale.user, opened.user);
        await stale.close();
      } finally {
        await node.stop('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test(`${enc}: when track() resolves, every list the event changed has been delivered (the ack comes after them)`, async () => {
      const client = makeClient(rc.url, enc, clientOptions({ user: uniqueUser('order') }));
      await nextEvent(client, 'open');
      const home = [];
      client.subscribe('home', { k: 5 }, (l) => home.push(l));
      await waitUntil(() => home.length >= 1, { what: 'the first list' });
      for (let i = 0; i < 4; i++) {
        // A purchase of the first item always changes the list (it never comes back).
        const item = home.at(-1).items[0].item;
        const bought = client.track({ kind: 'purchase', item });
        await bought;
        assert.ok(home.some((l) => l.cause === bought.id), `the list caused by ${bought.id} had not arrived when track() resolved`);
        assert.ok(!home.at(-1).items.some((it) => it.item === item));
      }
      // An impression changes no list: it resolves, and no list with its cause ever comes.
      const seen = client.track({ kind: 'impression', item: home.at(-1).items[0].item, surface: 'home' });
      await seen;
      assert.ok(!home.some((l) => l.cause === seen.id));
      await client.close();
    });
  }
});

// SPDX-License-Identifier: Apache-2.0
// Driven by browser.test.mjs through ?phase=…&enc=…&user=…; sets window.result to a promise of
// what the phase observed.

import { createClient } from '@rankcast/client';

const q = new URLSearchParams(location.search);
const phase = q.get('phase');
const encoding = q.get('enc');
const user = q.get('user');
const storageKey = `rankcast-test:${user}`;

const waitFor = (client, type, filter = () => true, timeoutMs = 5000) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type}`)), timeoutMs);
    const off = client.on(type, (v) => {
      if (!filter(v)) return;
      clearTimeout(timer);
      off();
      resolve(v);
    });
  });

/** Subscribe, click, and see the list re-ranked by the click; the default WebSocket is used. */
async function live() {
  const client = createClient({ url: '/ws', user, encoding, device: 'desktop', storageKey });
  const welcome = await waitFor(client, 'open');
  const first = await new Promise((resolve) => client.subscribe('home', { k: 4 }, resolve));
  let caused = null;
  for (const it of first.items) {
    const click = client.trackClick(first, it);
    const list = waitFor(client, 'recs', (l) => l.cause === click.id, 1000).catch(() => null);
    await click;
    caused = await list;
    if (caused) break;
  }
  await client.trackImpressions(first);
  const stats = client.stats();
  await client.close();
  return { user: welcome.user, items: first.items.length, caused: caused !== null, queued: stats.queued, storage: localStorage.getItem(storageKey) };
}

/** Track while the server is unreachable: the events wait in localStorage. */
async function queue() {
  const client = createClient({ url: 'ws://127.0.0.1:9/ws', user, encoding, storageKey, autoConnect: false });
  const ids = [client.track({ kind: 'view', item: '85123A' }).id, client.track({ kind: 'search', query: 'heart' }).id];
  await Promise.resolve();
  const stored = JSON.parse(localStorage.getItem(storageKey) ?? '[]').map((e) => e.id);
  return { ids, stored };
}

/** A new page (as after a reload) sends what the last one left in localStorage. */
async function resume() {
  const client = createClient({ url: '/ws', user, encoding, storageKey });
  const queuedAtStart = client.stats().queued;
  await waitFor(client, 'open');
  await client.flush(5000);
  const stats = client.stats();
  await client.close();
  return { queuedAtStart, acked: stats.acked, queued: stats.queued, storage: localStorage.getItem(storageKey) };
}

const phases = { live, queue, resume };
window.result = phases[phase]();
window.result.then(
  (r) => (document.getElementById('out').textContent = JSON.stringify(r)),
  (e) => (document.getElementById('out').textContent = `error: ${e}`),
);

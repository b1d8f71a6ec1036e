// SPDX-License-Identifier: Apache-2.0
// A small load for the dashboard test: N visitors on the client protocol (JSON subprotocol,
// Node's `ws`, not the SDK under test) each subscribing to a list and sending clicks and
// impressions at a steady rate until stopped.

import WebSocket from 'ws';

/**
 * @param {string} wsUrl e.g. ws://127.0.0.1:PORT/ws
 * @param {{visitors: number, perSecond: number, items: string[]}} opts
 * @returns {Promise<{stop: () => Promise<{sent: number, lists: number}>, users: string[]}>}
 */
export async function startLoad(wsUrl, { visitors, perSecond, items }) {
  let sent = 0, lists = 0, n = 0;
  const users = Array.from({ length: visitors }, (_, i) => `load-${process.pid}-${i}`);
  const shown = new Map(); // user index -> ids of the latest list: impressions and clicks are on it
  const sockets = await Promise.all(users.map((user, ui) => new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, 'rankcast.v1.json');
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', v: 1, user, device: 'mobile' })));
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'welcome') {
        ws.send(JSON.stringify({ type: 'subscribe', surface: 'home', k: 8 }));
        resolve(ws);
      } else if (msg.type === 'recs') {
        lists++;
        shown.set(ui, msg.items.map((it) => it.item));
      }
    });
  })));
  const timers = sockets.map((ws, i) => setInterval(() => {
    // Mostly what the visitor's list shows (so clicks count as click-through), now and then
    // something from the catalog.
    const list = shown.get(i) ?? [];
    const item = list.length > 0 && n % 5 !== 0 ? list[n % list.length] : items[(n * 7 + i) % items.length];
    n++;
    const kind = n % 3 === 0 ? 'click' : 'impression';
    ws.send(JSON.stringify({ type: 'event', id: `ev-${i}-${n}`, kind, item, surface: 'home' }));
    sent++;
  }, 1000 / perSecond));
  return {
    users,
    async stop() {
      timers.forEach(clearInterval);
      await Promise.all(sockets.map((ws) => new Promise((r) => { ws.once('close', r); ws.close(1000); })));
      return { sent, lists };
    },
  };
}

// SPDX-License-Identifier: Apache-2.0
// Driven by browser.test.mjs through script-tag.html?enc=…&user=…: the global Rankcast from
// dist/rankcast.min.js connects to the page's server, subscribes and reports the first list and
// which scripts the page loaded (the MessagePack add-on only for enc=msgpack).

window.result = (async () => {
  const q = new URLSearchParams(location.search);
  const client = window.Rankcast.createClient({ url: '/ws', encoding: q.get('enc'), user: q.get('user'), device: 'desktop', storage: null });
  const welcome = await new Promise((resolve, reject) => {
    const off = client.on('open', (w) => {
      off();
      resolve(w);
    });
    client.on('closed', (c) => reject(new Error(`closed: ${JSON.stringify(c)}`)));
    setTimeout(() => reject(new Error('no welcome')), 10000);
  });
  const list = await new Promise((resolve) => client.subscribe('home', { k: 4 }, resolve));
  await client.close();
  const scripts = performance
    .getEntriesByType('resource')
    .map((e) => new URL(e.name).pathname)
    .filter((p) => p.endsWith('.js'))
    .sort();
  return { user: welcome.user, surface: list.surface, items: list.items.length, scripts, msgpackGlobal: typeof window.RankcastMsgpack };
})();

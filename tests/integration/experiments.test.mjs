// Experiments against the real server: users are split between variants deterministically, the
// pushed lists name the variant, and impressions and clicks on a surface's list are counted per
// variant on /metrics with their CTR.

import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';

import { closeAllClients, connectHello, httpGet, parsePrometheus, startServer, stopServerCleanly, uniqueId } from './harness.mjs';

const EXPERIMENT = 'ab1;control=0.8,0.1,0.07,0.03;content=0.1,0.8,0.07,0.03';

let server;
before(async () => {
  server = await startServer({ extraArgs: ['--experiment', EXPERIMENT] });
});
after(async () => {
  closeAllClients();
  await stopServerCleanly(server);
});
afterEach(() => {
  assert.deepEqual(closeAllClients(), []);
});

/** The experiment samples on /metrics: {metric: {variant: value}}. */
async function experimentMetrics() {
  const res = await httpGet(server, '/metrics');
  assert.equal(res.status, 200);
  const { samples, bad } = parsePrometheus(res.body);
  assert.deepEqual(bad, []);
  const out = {};
  for (const s of samples) {
    if (!s.name.startsWith('rankcast_experiment_')) continue;
    const m = /experiment="([^"]*)",variant="([^"]*)"/.exec(s.labels);
    assert.ok(m, `labels ${s.labels}`);
    assert.equal(m[1], 'ab1');
    (out[s.name] ??= {})[m[2]] = s.value;
  }
  return out;
}

async function sendAcked(client, ev) {
  const id = uniqueId('xe');
  client.send({ type: 'event', id, ...ev });
  const ack = await client.next((m) => (m.type === 'ack' && m.ids.includes(id)) || (m.type === 'error' && m.id === id));
  assert.equal(ack.type, 'ack', JSON.stringify(ack));
}

test('users split between the variants, each always in the same one', async () => {
  const seen = new Map();
  for (let i = 0; i < 16; i++) {
    const user = `split-user-${i}`;
    const { client } = await connectHello(server, i % 2 ? 'msgpack' : 'json', { user });
    const recs = await client.subscribe('home', { k: 5 });
    assert.ok(['control', 'content'].includes(recs.variant), recs.variant);
    seen.set(user, recs.variant);
    client.close();
  }
  assert.equal(new Set(seen.values()).size, 2, 'sixteen users all in one variant');
  // Again, on new connections: the same variant for each user.
  for (const [user, variant] of seen) {
    const { client } = await connectHello(server, 'json', { user });
    assert.equal((await client.subscribe('side', { k: 3 })).variant, variant);
    client.close();
  }
});

test('impressions and clicks on a list count for the variant, with the CTR', async () => {
  const before = await experimentMetrics();
  const user = uniqueId('ctr');
  const { client } = await connectHello(server, 'json', { user });
  const recs = await client.subscribe('home', { k: 5 });
  const variant = recs.variant;
  const shown = recs.items.map((it) => it.item);
  const notShown = server.items.map((it) => it.id).find((id) => !shown.includes(id));
  await sendAcked(client, { kind: 'impression', item: shown[0], surface: 'home' });
  await sendAcked(client, { kind: 'impression', item: shown[1], surface: 'home' });
  await sendAcked(client, { kind: 'click', item: shown[1], surface: 'home' }); // counts
  await sendAcked(client, { kind: 'click', item: notShown, surface: 'home' }); // not in the list
  await sendAcked(client, { kind: 'click', item: shown[2] }); // no surface
  await sendAcked(client, { kind: 'view', item: shown[3], surface: 'home' }); // not a click
  const after = await experimentMetrics();
  const delta = (name) => (after[name]?.[variant] ?? 0) - (before[name]?.[variant] ?? 0);
  assert.equal(delta('rankcast_experiment_impressions_total'), 2);
  assert.equal(delta('rankcast_experiment_clicks_total'), 1);
  const imp = after.rankcast_experiment_impressions_total[variant];
  const clk = after.rankcast_experiment_clicks_total[variant];
  assert.ok(Math.abs(after.rankcast_experiment_ctr[variant] - clk / imp) < 1e-5);
  // Both variants are always exported, even before traffic.
  assert.deepEqual(Object.keys(after.rankcast_experiment_ctr).sort(), ['content', 'control']);
  client.close();
});

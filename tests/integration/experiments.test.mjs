// SPDX-License-Identifier: Apache-2.0
// Experiments against the real server: users are split between variants deterministically, the
// pushed lists name the variant, and impressions and clicks on a surface's list are counted per
// variant on /metrics with their CTR.

import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';

import { adminRequest, closeAllClients, connectHello, httpGet, parsePrometheus, startServer, stopServerCleanly, uniqueId } from './harness.mjs';

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

// The experiments API: an experiment started at run time replaces the one running, live users
// move to their variant of it, /metrics and GET describe it, and stop returns everyone to the
// engine's blend. A server of its own, so the experiment of the tests above stays as it is.
test('the experiments API starts, describes and stops an experiment; live users move to it', async () => {
  const ADMIN = 'it-admin-token';
  const srv = await startServer({ extraArgs: ['--admin-token', ADMIN] });
  const call = (method, path, body, token = ADMIN) => adminRequest(srv, method, path, body, token);
  try {
    assert.equal((await call('GET', '/api/v1/experiment', undefined, null)).status, 401);
    assert.equal((await call('POST', '/api/v1/experiment', { name: 'x' }, 'wrong')).status, 401);
    let r = await call('GET', '/api/v1/experiment');
    assert.equal(r.status, 200);
    assert.equal(r.json.name, null);
    assert.deepEqual(r.json.variants.map((v) => v.name), ['control']);

    const { client: early } = await connectHello(srv, 'json', { user: 'early-user' });
    assert.equal((await early.subscribe('home', { k: 5 })).variant, 'control');

    for (const bad of [
      { name: 'x', variants: [] },
      { name: 'x', variants: [{ name: 'a b', blend: { covisit: 1 } }] },
      { name: 'x', variants: [{ name: 'a', blend: { covisit: 0 } }] },
      { name: 'x', variants: [{ name: 'a', blend: { covisit: 1 } }], extra: true },
      { name: 'x', variants: [{ name: 'a', blend: { covisit: 1 } }, { name: 'a', blend: { content: 1 } }] },
      { name: 'x', variants: [{ name: 'a', share: 0, blend: { covisit: 1 } }] },
    ]) {
      r = await call('POST', '/api/v1/experiment', bad);
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal(typeof r.json.error, 'string');
    }
    const spec = {
      name: 'api1',
      salt: 'api1-salt',
      variants: [
        { name: 'cf', blend: { covisit: 0.9, content: 0.05, trending: 0.03, popular: 0.02 } },
        { name: 'cb', share: 1, blend: { covisit: 0.1, content: 0.8, trending: 0.07, popular: 0.03 } },
      ],
    };
    r = await call('POST', '/api/v1/experiment', spec);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.name, 'api1');
    assert.equal(r.json.salt, 'api1-salt');
    assert.deepEqual(r.json.variants.map((v) => [v.name, v.share, v.blend.content]), [['cf', 1, 0.05], ['cb', 1, 0.8]]);
    assert.deepEqual((await call('GET', '/api/v1/experiment')).json, r.json);

    const metrics = (await httpGet(srv, '/metrics')).body;
    assert.match(metrics, /rankcast_experiment_impressions_total\{experiment="api1",variant="cf"\} 0/);
    assert.doesNotMatch(metrics, /variant="control"/);

    // New users split between the new variants; the user connected before moved to one too.
    const seen = new Set();
    for (let i = 0; i < 12; i++) {
      const { client } = await connectHello(srv, 'json', { user: `api-user-${i}` });
      seen.add((await client.subscribe('home', { k: 5 })).variant);
      client.close();
    }
    assert.deepEqual([...seen].sort(), ['cb', 'cf']);
    early.send({ type: 'event', id: uniqueId('xe'), kind: 'click', item: srv.items[4].id });
    const after = await early.next((m) => m.type === 'recs' && m.variant !== 'control', 5000);
    assert.ok(['cb', 'cf'].includes(after.variant), after.variant);

    r = await call('POST', '/api/v1/experiment/stop', {});
    assert.equal(r.status, 200);
    assert.equal(r.json.name, null);
    const { client: late } = await connectHello(srv, 'json', { user: 'late-user' });
    assert.equal((await late.subscribe('home', { k: 5 })).variant, 'control');
  } finally {
    closeAllClients();
    await stopServerCleanly(srv);
  }
});

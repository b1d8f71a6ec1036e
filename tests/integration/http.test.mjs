// SPDX-License-Identifier: Apache-2.0
// The HTTP side of the real server: health and readiness probes, Prometheus metrics that move
// with traffic, and the static demo page at /.

import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';

import {
  closeAllClients,
  connectHello,
  httpGet,
  metricTotals,
  parsePrometheus,
  sleep,
  startServer,
  stopServerCleanly,
  uniqueId,
} from './harness.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  closeAllClients();
  await stopServerCleanly(server);
});
afterEach(() => {
  assert.deepEqual(closeAllClients(), []);
});

/** Scrapes /metrics: {totals: {name: sum over labels}, types: {name: type}}, asserting the format. */
async function scrape() {
  const res = await httpGet(server, '/metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/, 'Prometheus text is served as text/plain');
  const { samples, bad } = parsePrometheus(res.body);
  assert.deepEqual(bad, [], 'lines that are not Prometheus text exposition');
  assert.ok(samples.length > 0, 'no samples in /metrics');
  const totals = metricTotals(samples);
  const types = {};
  for (const m of res.body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types[m[1]] = m[2];
  return { totals, types, body: res.body };
}

/** The declared type of a sample name (OpenMetrics declares counters without `_total`). */
const typeOf = (scraped, name) => scraped.types[name] ?? scraped.types[name.replace(/_total$/, '')];

/** Names (containing `word`, of `type`) whose total moved from `a` to `b` by at least `delta`. */
function moved(a, b, word, type, delta) {
  return Object.keys(b.totals).filter(
    (name) => name.includes(word) && typeOf(b, name) === type && b.totals[name] - (a.totals[name] ?? 0) >= delta,
  );
}

test('/healthz and /readyz answer 200', async () => {
  assert.equal((await httpGet(server, '/healthz')).status, 200);
  assert.equal((await httpGet(server, '/readyz')).status, 200);
});

test('/metrics is Prometheus text whose connection gauge and event counter move', async () => {
  const m0 = await scrape();
  const clients = [];
  for (let i = 0; i < 3; i++) {
    const { client } = await connectHello(server, i % 2 ? 'msgpack' : 'json', { user: uniqueId('metered') });
    clients.push(client);
  }
  const ids = [];
  for (let i = 0; i < 5; i++) {
    const id = uniqueId('mev');
    ids.push(id);
    clients[0].send({ type: 'event', id, kind: 'view', item: server.items[i].id });
  }
  // One ack may name several events (the server batches them): collect until all are in.
  const acked = new Set();
  while (ids.some((id) => !acked.has(id))) {
    const ack = await clients[0].next((m) => m.type === 'ack');
    for (const id of ack.ids) acked.add(id);
  }
  const m1 = await scrape();

  const gauges = moved(m0, m1, 'connections', 'gauge', 3);
  assert.ok(gauges.length > 0, `no gauge named *connections* rose by 3 with 3 new connections:\n${m1.body}`);
  const counters = moved(m0, m1, 'events', 'counter', 5);
  assert.ok(counters.length > 0, `no counter named *events* rose by 5 with 5 acked events:\n${m1.body}`);

  // The gauge follows connections down again when they close.
  for (const c of clients) c.close();
  let fell = [];
  for (let tries = 0; tries < 40 && fell.length === 0; tries++) {
    await sleep(50);
    const m2 = await scrape();
    fell = gauges.filter((name) => m1.totals[name] - m2.totals[name] >= 3);
  }
  assert.ok(fell.length > 0, `${gauges.join(', ')} did not fall by 3 after 3 connections closed`);
});

/** The value of one sample, `name` with exactly `labels` (the text between braces), or undefined. */
function sample(scraped, name, labels = '') {
  const { samples } = parsePrometheus(scraped.body);
  return samples.find((s) => s.name === name && s.labels === labels)?.value;
}

test('rankcast_profile_store_up is 1 with the in-memory store, as /readyz says', async () => {
  const ready = JSON.parse((await httpGet(server, '/readyz')).body);
  assert.equal(ready.profiles.backend, 'memory');
  assert.equal(ready.profiles.ok, true);
  const m = await scrape();
  assert.equal(typeOf(m, 'rankcast_profile_store_up'), 'gauge');
  assert.equal(sample(m, 'rankcast_profile_store_up'), 1, 'an `up == 0` alert would fire on a healthy default node');
});

test('the standard process metrics describe this process', async () => {
  const m0 = await scrape();
  const now = Date.now() / 1000;
  for (const [name, type] of [
    ['process_cpu_seconds_total', 'counter'],
    ['process_resident_memory_bytes', 'gauge'],
    ['process_open_fds', 'gauge'],
    ['process_max_fds', 'gauge'],
    ['process_start_time_seconds', 'gauge'],
  ]) {
    assert.equal(typeOf(m0, name), type, `${name} is a ${type}`);
    assert.ok(Number.isFinite(sample(m0, name)), `${name} has one unlabelled sample`);
  }
  // The server of this file started within the last few minutes, not at boot or in 1970.
  const started = sample(m0, 'process_start_time_seconds');
  assert.ok(started > now - 600 && started <= now + 1, `process_start_time_seconds ${started}, now ${now}`);
  // Its resident size is that of a real process (more than 1 MiB, less than 4 GiB).
  const rss = sample(m0, 'process_resident_memory_bytes');
  assert.ok(rss > 2 ** 20 && rss < 2 ** 32, `process_resident_memory_bytes ${rss}`);
  assert.ok(sample(m0, 'process_cpu_seconds_total') >= 0);
  assert.ok(sample(m0, 'process_max_fds') >= sample(m0, 'process_open_fds'));

  // Descriptors follow connections: three more sockets, three more descriptors at least.
  const clients = [];
  for (let i = 0; i < 3; i++) clients.push((await connectHello(server, 'json', { user: uniqueId('fds') })).client);
  const m1 = await scrape();
  assert.ok(
    sample(m1, 'process_open_fds') - sample(m0, 'process_open_fds') >= 3,
    `process_open_fds ${sample(m0, 'process_open_fds')} -> ${sample(m1, 'process_open_fds')} with 3 more connections`,
  );
  for (const c of clients) c.close();
});

test('HTTP requests are counted by status class', async () => {
  const classes = ['1xx', '2xx', '3xx', '4xx', '5xx'];
  const count = (m, cls) => sample(m, 'rankcast_http_requests_total', `code="${cls}"`);
  const m0 = await scrape();
  assert.equal(typeOf(m0, 'rankcast_http_requests_total'), 'counter');
  const labelled = parsePrometheus(m0.body).samples.filter((s) => s.name === 'rankcast_http_requests_total');
  assert.deepEqual(
    labelled.map((s) => s.labels),
    classes.map((c) => `code="${c}"`),
    'one series per class, zeros included, so rates work from the start',
  );
  assert.equal((await httpGet(server, '/healthz')).status, 200);
  assert.equal((await httpGet(server, '/readyz')).status, 200);
  assert.equal((await httpGet(server, '/api/v1/push')).status, 405); // a GET of a POST route
  assert.equal((await httpGet(server, '/api/v1/no-such-route')).status, 405);
  const m1 = await scrape();
  // m0's own scrape (200) is counted after it was rendered, so 2xx rises by the two probes + 1.
  assert.equal(count(m1, '2xx') - count(m0, '2xx'), 3);
  assert.equal(count(m1, '4xx') - count(m0, '4xx'), 2);
  assert.equal(count(m1, '5xx') - count(m0, '5xx'), 0);
});

test('/ serves the demo page as HTML', async () => {
  const res = await httpGet(server, '/');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(res.body, /<!doctype html|<html/i);
});

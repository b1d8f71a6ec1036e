// SPDX-License-Identifier: Apache-2.0
// The ops dashboard in headless Chromium against the real binary, and its feed
// (`rankcast.ops.v1` on /ops) from a plain WebSocket client: under a generated load the
// counters and the latency chart must move (pushed snapshots, nothing polled), recent events
// show pseudonyms only, click-through per variant is counted; a dashboard opened after the
// load draws it from the history the server sends first; errors and refused upgrades are
// shown by code and reason; when the server goes away the figures are greyed under a banner
// and come back with it; tables stack on a phone; the feed is open in demo mode, needs the
// admin token when one is set (first message) and is off otherwise.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import WebSocket from 'ws';

import { DESKTOP, PHONE, REPO_ROOT, launchBrowser, missingReason, openPage, screenshot, sleep, startDemoServer, stopCleanly } from './harness.mjs';
import { startLoad } from './load.mjs';

const skip = missingReason();
if (skip) console.log(`# ops browser tests skipped: ${skip}`);

const ITEMS = readFileSync(join(REPO_ROOT, 'web-demo/catalog/demo-catalog.jsonl'), 'utf8')
  .split('\n').filter(Boolean).slice(0, 400).map((l) => JSON.parse(l).id);

/** Opens the feed, sends `hello`, and collects messages until the close. */
function feed(url, hello) {
  const ws = new WebSocket(url.replace('http', 'ws') + '/ops', 'rankcast.ops.v1');
  const messages = [];
  const closed = new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('close', (code) => resolve(code));
  });
  ws.on('open', () => ws.send(JSON.stringify(hello)));
  ws.on('message', (d) => messages.push(JSON.parse(String(d))));
  const until = async (pred, ms = 3000) => {
    const end = Date.now() + ms;
    while (!pred(messages)) {
      if (Date.now() > end) throw new Error(`feed: condition not met; got ${JSON.stringify(messages).slice(0, 400)}`);
      await sleep(20);
    }
  };
  return { ws, messages, closed, until };
}

const num = (text) => Number(text.replace(/[^0-9.]/g, ''));

describe('ops dashboard', { skip: skip ?? false, timeout: 120_000 }, () => {
  let server, browser;
  before(async () => {
    server = await startDemoServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await stopCleanly(server);
  });

  test('counters and the latency chart move under load; pushed, not polled', async () => {
    const { page, problems } = await openPage(browser, DESKTOP);
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`${server.url}/ops.html`);
    await page.waitForFunction(() => document.getElementById('feed').dataset.state === 'open');
    await page.waitForFunction(() => document.getElementById('kpi-events-total').textContent.includes('in all'));
    const total0 = num(await page.locator('#kpi-events-total').innerText());
    const requestsBefore = requests.length;

    const load = await startLoad(`${server.url.replace('http', 'ws')}/ws`, { visitors: 20, perSecond: 10, items: ITEMS });
    try {
      await page.waitForFunction(() => Number(document.getElementById('kpi-connections').textContent) >= 20, null, { timeout: 5000 });
      await page.waitForFunction(() => Number(document.getElementById('chart-latency').dataset.points) >= 3, null, { timeout: 8000 });
      const path1 = await page.getAttribute('#chart-latency path[data-series="p99"]', 'd');
      const eventsPerS = num(await page.locator('#kpi-events').innerText());
      assert.ok(eventsPerS > 50, `events/s shows ${eventsPerS} under ~200 events/s of load`);
      assert.ok(num(await page.locator('#kpi-pushes').innerText()) > 0, 'pushes/s moves');
      assert.match(await page.locator('#kpi-p99').innerText(), /\d+(\.\d+)? (µs|ms)/);
      await sleep(1200);
      const path2 = await page.getAttribute('#chart-latency path[data-series="p99"]', 'd');
      assert.ok(path1 && path2 && path1 !== path2, 'the latency chart is redrawn with new points');
      assert.ok(Number(await page.getAttribute('#chart-hist', 'data-total')) > 0, 'the histogram has observations');
      // Recent events: pseudonyms only.
      const users = await page.$$eval('#events tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent));
      assert.ok(users.length > 0, 'recent events are listed');
      for (const u of users) assert.match(u, /^v-[0-9a-f]{8}$/, 'visitors are pseudonyms');
      const html = await page.content();
      for (const u of load.users) assert.ok(!html.includes(u), `raw user id ${u} must not reach the dashboard`);
      const variant = await page.$$eval('#variants tr td', (tds) => tds.map((td) => td.textContent));
      assert.equal(variant[0], 'control');
      assert.ok(num(variant[1]) > 0 && num(variant[2]) > 0, `impressions and clicks counted: ${variant.join(' | ')}`);
      assert.match(await page.locator('#backends').innerText(), /Profiles in memory[\s\S]*In-process bus/);
      assert.equal(await page.locator('#nodes tr').count(), 1, 'one node');
      await screenshot(page, 'ops-desktop', { fullPage: true });
      await page.setViewportSize(PHONE);
      await sleep(700);
      await screenshot(page, 'ops-phone');
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
      assert.ok(overflow <= 0, `the dashboard is ${overflow}px wider than a phone`);
    } finally {
      const { sent } = await load.stop();
      assert.ok(sent > 200, `load sent ${sent} events`);
    }
    await page.waitForFunction((t) => Number(document.getElementById('kpi-events-total').textContent.replace(/[^0-9]/g, '')) > t + 200, total0);
    assert.equal(requests.length, requestsBefore, `no HTTP requests while live (polling?): ${requests.slice(requestsBefore).join(', ')}`);
    assert.deepEqual(problems, []);
  });

  test('a dashboard opened after the load draws it at once, from the history the server sends first', async () => {
    const { page, problems } = await openPage(browser, DESKTOP);
    let snapshots = 0;
    page.on('websocket', (ws) => ws.on('framereceived', (f) => { if (String(f.payload).startsWith('{"type":"snapshot"')) snapshots++; }));
    await page.goto(`${server.url}/ops.html`);
    await page.waitForFunction(() => document.getElementById('main').getAttribute('aria-busy') === 'false');
    const points = Number(await page.getAttribute('#chart-latency', 'data-points'));
    // Live snapshots alone would give at most one point per snapshot received so far.
    assert.ok(points > snapshots + 5, `the latency chart has ${points} points after ${snapshots} snapshots`);
    assert.ok(await page.locator('#latency-empty').isHidden(), 'no "waiting" note over a chart with data');
    assert.match(await page.locator('#chart-latency text.tick').last().textContent() ?? '', /^−\d+ (s|min)$/);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('errors by code and refused upgrades by reason; tables stack on a phone', async () => {
    // The page first, so that the errors below are seen within the feed's 5 s window.
    const { page, problems } = await openPage(browser, DESKTOP);
    await page.goto(`${server.url}/ops.html`);
    await page.waitForFunction(() => document.getElementById('main').getAttribute('aria-busy') === 'false');
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws`, 'rankcast.v1.json');
    await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
    ws.send('not json'); // 4000 malformed
    ws.send(JSON.stringify({ type: 'subscribe', surface: 'home' })); // 4004 hello_required
    const refused = await new Promise((resolve) => {
      const bad = new WebSocket(`${server.url.replace('http', 'ws')}/not-ws`, 'rankcast.v1.json');
      bad.on('unexpected-response', (_req, res) => { resolve(res.statusCode); res.resume(); });
      bad.on('open', () => { resolve(101); bad.close(); });
      bad.on('error', () => {});
    });
    assert.equal(refused, 404);
    // The rows of one snapshot in which all three show.
    const rows = await (await page.waitForFunction(() => {
      const rs = [...document.querySelectorAll('#problems tr')].map((tr) => [...tr.cells].map((td) => td.textContent.trim()));
      const has = (what) => rs.some((r) => r[0] === what && r[1] !== '0');
      return has('4000 malformed') && has('4004 hello_required') && has('path') ? rs : null;
    })).jsonValue();
    const find = (what) => rows.find((r) => r[0] === what);
    assert.deepEqual(find('4004 hello_required')?.slice(1), ['1', '1'], 'in the last 5 s, and since start');
    assert.deepEqual(find('path')?.slice(1), ['1', '1'], `the refused upgrade is listed: ${JSON.stringify(rows)}`);
    assert.ok(Number(find('Errors answered')?.[2]) >= 2);
    assert.equal(find('Slow consumers closed')?.[2], '0');
    assert.ok(await page.locator('#problems tr.hot').count() >= 3, 'lines with recent problems are marked');
    assert.match(await page.locator('#kpi-problems').innerText(), /^[1-9]\d* · 1 · 0$/);
    assert.ok(await page.locator('#kpi-problems-tile.alert').isVisible(), 'the tile turns red');
    ws.close();
    // A phone: every table fits, each cell named by its column.
    await page.setViewportSize(PHONE);
    await sleep(700);
    const overflow = await page.evaluate(() => [...document.querySelectorAll('table')].map((t) => t.scrollWidth - t.parentElement.clientWidth));
    assert.ok(overflow.every((px) => px <= 0), `tables wider than their panel on a phone: ${overflow}`);
    const labels = await page.$$eval('#nodes td', (tds) => tds.map((td) => getComputedStyle(td, '::before').content));
    assert.ok(labels.includes('"Connections"'), `cells of a stacked table name their column on a phone: ${labels.slice(0, 4)}`);
    await page.locator('#problems-panel').scrollIntoViewIfNeeded();
    await screenshot(page, 'ops-phone-problems');
    await screenshot(page, 'ops-phone-full', { fullPage: true });
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('the feed: welcome, the history, then a snapshot every ~500 ms', async () => {
    const f = feed(server.url, { type: 'hello' });
    await f.until((m) => m.filter((x) => x.type === 'snapshot').length >= 3, 4000);
    assert.deepEqual(f.messages[0], { type: 'welcome', node: f.messages[2].node, interval_ms: 500, auth: 'open' });
    const h = f.messages[1];
    assert.equal(h.type, 'history');
    const n = h.t_ms.length;
    assert.ok(n > 10 && n <= 1800, `${n} points of history`);
    for (const k of ['events_per_s', 'pushes_per_s', 'p50_us', 'p99_us', 'p999_us', 'connections', 'errors', 'refused', 'slow_consumers']) {
      assert.equal(h[k].length, n, `column ${k}`);
    }
    assert.ok(h.t_ms.every((t, i) => i === 0 || t > h.t_ms[i - 1]), 'oldest first');
    assert.ok(h.events_per_s.some((x) => x > 50), 'the load of the first test is in the history');
    assert.ok(h.errors.reduce((a, b) => a + b, 0) >= 2, 'so are the errors of the test before');
    const snaps = f.messages.filter((x) => x.type === 'snapshot');
    assert.equal(snaps[0].seq, h.last_seq, 'the first snapshot is the newest point of the history');
    const dt = snaps.at(-1).t_ms - snaps.at(-2).t_ms;
    assert.ok(dt >= 400 && dt <= 700, `snapshots ${dt} ms apart`);
    for (const key of ['connections', 'events_per_s', 'pushes_per_s', 'latency', 'problems', 'recent', 'variants', 'backends', 'nodes']) {
      assert.ok(key in snaps[0], `snapshot has ${key}`);
    }
    assert.equal(snaps[0].latency.histogram.counts.length, snaps[0].latency.histogram.le_us.length + 1);
    f.ws.close();
    await f.closed;
  });

  test('page: the pages and the SDK are served offline by the server itself', async () => {
    for (const path of ['/', '/ops.html', '/sdk/src/index.js', '/vendor/msgpack/index.mjs', '/catalog/ATTRIBUTION.md']) {
      const res = await fetch(server.url + path);
      assert.equal(res.status, 200, path);
      await res.arrayBuffer();
    }
  });
});

describe('ops dashboard when the server goes away', { skip: skip ?? false, timeout: 90_000 }, () => {
  test('stale figures (a silent or closed feed) are greyed under a banner saying since when, and live again', async () => {
    let server = await startDemoServer();
    const browser = await launchBrowser();
    try {
      const { page, problems } = await openPage(browser, DESKTOP);
      await page.goto(`${server.url}/ops.html`);
      await page.waitForFunction(() => document.getElementById('feed').dataset.state === 'open'
        && document.getElementById('kpi-events-total').textContent.includes('in all'));
      assert.equal(await page.getAttribute('#main', 'data-stale'), null);
      const opacity = () => page.$eval('.kpi', (e) => Number(getComputedStyle(e).opacity));
      assert.equal(await opacity(), 1);
      // A server that stops answering (here: stopped by a signal) leaves the socket open:
      // the page notices the silence.
      process.kill(server.pid, 'SIGSTOP');
      try {
        await page.waitForSelector('#main[data-stale]', { timeout: 8000 });
        assert.match(await page.locator('#stale').innerText(), /the feed is silent/);
      } finally {
        process.kill(server.pid, 'SIGCONT');
      }
      await page.waitForFunction(() => !document.getElementById('main').hasAttribute('data-stale'), null, { timeout: 5000 });
      const port = server.port;
      await stopCleanly(server);
      server = null;
      await page.waitForSelector('#main[data-stale]', { timeout: 5000 });
      await page.waitForFunction(() => getComputedStyle(document.querySelector('.kpi')).opacity < 0.7); // after the fade
      assert.match(await page.locator('#stale').innerText(), /^No figures since \d\d:\d\d:\d\d: the feed is disconnected/);
      assert.notEqual(await page.locator('#kpi-events-total').innerText(), '–', 'the last figures stay, greyed');
      await screenshot(page, 'ops-desktop-stale');
      server = await startDemoServer([], { port });
      await page.waitForFunction(() => !document.getElementById('main').hasAttribute('data-stale'), null, { timeout: 20_000 });
      assert.ok(await page.locator('#stale').isHidden());
      assert.equal(await page.getAttribute('#feed', 'data-state'), 'open');
      // The page logged the failed reconnects; nothing else.
      assert.deepEqual(problems.filter((p) => !/WebSocket connection to .*\/ops' failed/.test(p)), []);
    } finally {
      await browser.close();
      if (server) await stopCleanly(server);
    }
  });
});

describe('ops feed access', { skip: skip ?? false, timeout: 60_000 }, () => {
  test('with --admin-token the first message must carry it (wrong or missing: 4010)', async () => {
    const server = await startDemoServer(['--admin-token', 'ops-secret-1']);
    const browser = await launchBrowser();
    try {
      for (const hello of [{ type: 'hello' }, { type: 'hello', token: 'ops-secret-2' }, { type: 'hello', token: 'ops-secret-' }, { type: 'subscribe' }]) {
        const f = feed(server.url, hello);
        const code = await f.closed;
        assert.equal(code, 4010, `refused ${JSON.stringify(hello)}`);
        assert.equal(f.messages.length, 1);
        assert.equal(f.messages[0].type, 'error');
        assert.equal(f.messages[0].code, 4010);
      }
      const ok = feed(server.url, { type: 'hello', token: 'ops-secret-1' });
      await ok.until((m) => m.some((x) => x.type === 'snapshot'));
      assert.equal(ok.messages[0].auth, 'token');
      ok.ws.close();
      // The page asks for the token, then connects with it.
      const { page, problems } = await openPage(browser, DESKTOP);
      await page.goto(`${server.url}/ops.html`);
      await page.waitForSelector('#auth:not([hidden])');
      await page.fill('#token', 'ops-secret-1');
      await page.click('#auth button');
      await page.waitForFunction(() => document.getElementById('feed').dataset.state === 'open');
      await page.waitForFunction(() => document.getElementById('kpi-events-total').textContent.includes('in all'));
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      await stopCleanly(server);
    }
  });

  test('--allowed-origins applies to the feed: a page of another origin cannot open it', async () => {
    const server = await startDemoServer(['--allowed-origins', 'http://shop.example']);
    try {
      const status = (origin) => new Promise((resolve) => {
        const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ops`, 'rankcast.ops.v1', { origin });
        ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode); res.resume(); });
        ws.on('open', () => { resolve(101); ws.close(); });
        ws.on('error', () => {});
      });
      assert.equal(await status('http://evil.example'), 403);
      assert.equal(await status('http://shop.example'), 101);
    } finally {
      await stopCleanly(server);
    }
  });

  test('without --demo and without an admin token the feed is off', async () => {
    const server = await startDemoServer(['--demo=false']);
    try {
      const f = feed(server.url, { type: 'hello' });
      assert.equal(await f.closed, 4010);
      assert.match(f.messages[0].message, /admin-token/);
    } finally {
      await stopCleanly(server);
    }
  });
});

// SPDX-License-Identifier: Apache-2.0
// The React example (examples/react/: useRecommendations and <Rail>) rendered by real React 19
// (react-dom, development build) in headless Chromium against the real rankcast binary. The page,
// test-support/react/harness.jsx, is bundled with esbuild and served by the server's --web-root;
// it records the JSON frames on the wire and every subscription handle the hook takes. Skipped,
// with the reason, when the binary or chromium is missing.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

import { Browser, chromiumMissing } from '../test-support/cdp.mjs';
import { RankcastProcess, freePort, missingBinaryReason } from '../test-support/rankcast-process.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const skip = missingBinaryReason() ?? chromiumMissing();
if (skip) console.log(`# React example tests skipped: ${skip}`);

describe('React example in a browser', { skip: skip ?? false, timeout: 120_000 }, () => {
  let webRoot;
  let rc;
  let browser;
  before(async () => {
    webRoot = mkdtempSync(join(tmpdir(), 'rankcast-react-'));
    cpSync(join(root, 'test-support/react/react.html'), join(webRoot, 'react.html'));
    await esbuild.build({
      entryPoints: [join(root, 'test-support/react/harness.jsx')],
      outfile: join(webRoot, 'harness.js'),
      bundle: true,
      format: 'iife',
      target: 'es2022',
      jsx: 'automatic',
      jsxDev: true,
      // React's development build: StrictMode runs every effect twice on mount.
      define: { 'process.env.NODE_ENV': '"development"' },
      logLevel: 'warning',
    });
    rc = await new RankcastProcess(await freePort(), ['--web-root', webRoot]).start();
    browser = await Browser.launch();
  });
  after(async () => {
    await browser?.close();
    await rc?.stop('SIGTERM');
    if (webRoot) rmSync(webRoot, { recursive: true, force: true });
  });

  let pages = 0;
  /** A fresh page (and user: lists of one test never depend on another's clicks). */
  const open = async () => {
    const page = await browser.newPage();
    await page.navigate(`http://127.0.0.1:${rc.port}/react.html?user=react-${process.pid}-${++pages}`);
    await page.result('harness');
    return page;
  };
  const snapshot = (page) => page.evaluate('harness.snapshot()');
  /** Polls the page's snapshot until `ok(snapshot)`; fails with the last one. */
  const until = async (page, what, ok, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await snapshot(page);
      if (ok(s)) return s;
      if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms; the page: ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const lastList = (s, surface) => s.lists.filter((l) => l.surface === surface).at(-1);
  /** The page shows the newest list the server pushed for `surface`, live. */
  const showsLatest = (surface) => (s) => {
    const l = lastList(s, surface);
    return s.surface === surface && s.status === 'live' && l !== undefined && s.version === l.version && s.items.join() === l.items.join();
  };

  test('shows the list the server pushes, and re-renders with the list a click changed', async () => {
    const page = await open();
    await page.evaluate(`harness.mount({surface: 'home', k: 4})`);
    let s = await until(page, 'the first list of home', showsLatest('home'));
    assert.equal(s.items.length, 4);
    assert.equal(lastList(s, 'home').cause, null, 'the list sent on subscribe');

    // One click may change no list; the ack comes after every list it changed (PROTOCOL.md §5).
    let caused;
    for (let i = 0; i < 4 && !caused; i++) {
      const id = await page.evaluate(`harness.click(${i})`);
      caused = (await snapshot(page)).lists.find((l) => l.cause === id);
    }
    assert.ok(caused, 'one of four clicks re-ranked home');
    s = await until(page, 'the re-ranked list of home', (x) => showsLatest('home')(x) && x.version >= caused.version);
    assert.notDeepEqual(s.items, (await snapshot(page)).lists.find((l) => l.surface === 'home').items, 'the page shows another list than the first');
    assert.deepEqual(s.activeHandles, ['home']);
    assert.deepEqual(s.sent, ['subscribe home']);
  });

  test('a new surface prop subscribes it and lets the old one go', async () => {
    const page = await open();
    await page.evaluate(`harness.mount({surface: 'home', k: 4})`);
    const home = await until(page, 'the list of home', showsLatest('home'));
    const shownBefore = home.shown.length;
    await page.evaluate(`harness.update({surface: 'pdp', k: 3})`);
    const s = await until(page, 'the list of pdp', showsLatest('pdp'));
    assert.equal(s.items.length, 3);
    // Between the two lists the rail says 'loading' and never shows home's list as pdp's.
    const pdpLists = new Set(s.lists.filter((l) => l.surface === 'pdp').map((l) => l.items.join()));
    const between = s.shown.slice(shownBefore).filter((x) => x.surface === 'pdp' && !pdpLists.has(x.items.join()));
    assert.deepEqual(between, [{ mounted: true, surface: 'pdp', status: 'loading', version: null, items: [] }]);
    assert.deepEqual(s.sent, ['subscribe home', 'subscribe pdp', 'unsubscribe home']);
    assert.deepEqual(s.activeHandles, ['pdp']);
    assert.equal(s.sdkSurfaces, 1);
    // New options for the same surface subscribe it again with them.
    await page.evaluate(`harness.update({k: 5})`);
    const k5 = await until(page, 'pdp with k = 5', (x) => showsLatest('pdp')(x) && x.items.length === 5);
    assert.deepEqual(k5.activeHandles, ['pdp']);
    assert.deepEqual(k5.sent.slice(3), ['subscribe pdp']);
  });

  test('unmount unsubscribes: the SDK holds nothing and the server pushes no more lists', async () => {
    const page = await open();
    await page.evaluate(`harness.mount({surface: 'home', k: 4})`);
    const live = await until(page, 'the list of home', showsLatest('home'));
    await page.evaluate('harness.unmount()');
    const s = await until(page, 'the unsubscribe', (x) => x.sent.includes('unsubscribe home'));
    assert.equal(s.mounted, false);
    assert.deepEqual(s.sent, ['subscribe home', 'unsubscribe home']);
    assert.deepEqual(s.activeHandles, []);
    assert.equal(s.sdkSurfaces, 0);
    // Clicks that would re-rank home (see the first test) bring no list: the server let it go.
    // Each track() resolves after every list its event changed was written.
    const before = s.lists.length;
    await page.evaluate(`Promise.all(${JSON.stringify(live.items)}.map((item) => harness.client.track({kind: 'click', item, surface: 'home'})))`);
    assert.equal((await snapshot(page)).lists.length, before);
  });

  test('StrictMode runs the effect twice and leaves one subscription, on the wire once', async () => {
    const page = await open();
    await page.evaluate(`harness.mount({surface: 'home', k: 4, strict: true})`);
    let s = await until(page, 'the list of home', showsLatest('home'));
    assert.equal(s.handlesCreated, 2, 'StrictMode subscribed twice (else this test proves nothing)');
    assert.deepEqual(s.activeHandles, ['home']);
    assert.equal(s.sdkSurfaces, 1);
    assert.deepEqual(s.sent, ['subscribe home']);
    // A re-render with a fresh but equal options object keeps the subscription.
    await page.evaluate('harness.update({})');
    s = await snapshot(page);
    assert.equal(s.handlesCreated, 2);
    await page.evaluate(`harness.update({surface: 'pdp'})`);
    s = await until(page, 'the list of pdp', showsLatest('pdp'));
    assert.deepEqual(s.activeHandles, ['pdp']);
    await page.evaluate('harness.unmount()');
    s = await until(page, 'the unsubscribe of pdp', (x) => x.sent.at(-1) === 'unsubscribe pdp');
    assert.deepEqual(s.activeHandles, []);
    assert.equal(s.sdkSurfaces, 0);
    assert.deepEqual(s.sent, ['subscribe home', 'subscribe pdp', 'unsubscribe home', 'unsubscribe pdp']);
  });

  test('the rail keeps its list while the client reconnects, then is live again; closed says so', async () => {
    const page = await open();
    await page.evaluate(`harness.mount({surface: 'home', k: 4})`);
    const live = await until(page, 'the list of home', showsLatest('home'));
    await page.evaluate('harness.client.reconnect()');
    // After the new welcome the SDK subscribes home again and the server answers with its list.
    const back = await until(page, 'home again after the reconnect', (x) => x.sent.length === 2 && showsLatest('home')(x));
    assert.deepEqual(back.sent, ['subscribe home', 'subscribe home']);
    const during = back.shown.slice(live.shown.length).filter((x) => x.status !== 'live');
    assert.ok(during.length > 0, 'the reconnect was seen');
    for (const x of during) assert.deepEqual({ status: x.status, items: x.items }, { status: 'reconnecting', items: live.items });
    assert.deepEqual(back.activeHandles, ['home']);
    await page.evaluate('harness.client.close()');
    const closed = await until(page, 'the closed status', (x) => x.status === 'closed');
    assert.deepEqual(closed.items, back.items, 'the last list stays on screen');
  });

  test('a subscription the server refuses shows as status "error" with its message', async () => {
    const page = await open();
    // The server keeps at most 64 live lists per user: four more connections of the user hold 64.
    await page.evaluate(`(async () => {
      if (harness.client.state !== 'open') await new Promise((resolve) => harness.client.once('open', resolve));
      const held = [];
      for (let n = 0; n < 4; n++) {
        const other = harness.otherClient();
        for (let i = 0; i < 16; i++) held.push(new Promise((resolve) => other.subscribe('s' + n + '-' + i, resolve)));
      }
      await Promise.all(held);
    })()`);
    await page.evaluate(`harness.mount({surface: 'home', k: 4})`);
    const s = await until(page, 'the error status', (x) => x.status === 'error');
    assert.deepEqual(s.items, []);
    assert.deepEqual(s.sent, ['subscribe home']);
    assert.match(await page.evaluate(`document.querySelector('.rail [role=status]').textContent`), /^Recommendations unavailable: .*too many live lists/);
  });

  test('options subscribe() refuses show as status "error", with nothing subscribed', async () => {
    const page = await open();
    await page.evaluate(`harness.mount({surface: 'home', k: 1000})`);
    const s = await until(page, 'the error status', (x) => x.status === 'error');
    assert.deepEqual(s.items, []);
    assert.deepEqual(s.activeHandles, []);
    assert.deepEqual(s.sent, []);
    assert.match(await page.evaluate(`document.querySelector('.rail [role=status]').textContent`), /unavailable/);
  });
});

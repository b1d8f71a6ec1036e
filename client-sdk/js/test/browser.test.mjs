// SPDX-License-Identifier: Apache-2.0
// The SDK in a real browser: headless Chromium loads test-support/browser/index.html from the real
// rankcast binary (its --web-root is a temporary directory with the page, the SDK sources and
// @msgpack/msgpack's ESM build). The page uses the browser's own WebSocket and localStorage,
// in both subprotocols. A second page loads the script-tag build (dist/, built by build.mjs)
// with a plain <script> and uses the global Rankcast. Skipped, with the reason, when the binary or chromium is missing.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Browser, chromiumMissing } from '../test-support/cdp.mjs';
import { build } from '../build.mjs';
import { RankcastProcess, freePort, missingBinaryReason } from '../test-support/rankcast-process.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const skip = missingBinaryReason() ?? chromiumMissing();
if (skip) console.log(`# browser tests skipped: ${skip}`);

describe('in a browser', { skip: skip ?? false, timeout: 90_000 }, () => {
  let webRoot;
  let rc;
  let browser;
  before(async () => {
    webRoot = mkdtempSync(join(tmpdir(), 'rankcast-sdk-web-'));
    cpSync(join(root, 'src'), join(webRoot, 'sdk/src'), { recursive: true });
    cpSync(join(root, 'node_modules/@msgpack/msgpack/dist.esm'), join(webRoot, 'vendor/msgpack'), { recursive: true });
    cpSync(join(root, 'test-support/browser'), webRoot, { recursive: true });
    await build({ outdir: join(webRoot, 'dist') });
    rc = await new RankcastProcess(await freePort(), ['--web-root', webRoot]).start();
    browser = await Browser.launch();
  });
  after(async () => {
    await browser?.close();
    await rc?.stop('SIGTERM');
    if (webRoot) rmSync(webRoot, { recursive: true, force: true });
  });

  const open = async (query) => {
    const page = await browser.newPage();
    await page.navigate(`http://127.0.0.1:${rc.port}/index.html?${new URLSearchParams(query)}`);
    return page;
  };

  for (const enc of ['json', 'msgpack']) {
    test(`script tag, ${enc}: window.Rankcast connects, subscribes and gets a list`, async () => {
      const user = `browser-script-${enc}-${process.pid}`;
      const page = await browser.newPage();
      await page.navigate(`http://127.0.0.1:${rc.port}/script-tag.html?${new URLSearchParams({ enc, user })}`);
      const r = await page.result('result');
      // JSON pages never fetch the MessagePack add-on; msgpack pages fetch it on their own.
      const scripts = enc === 'json' ? ['/dist/rankcast.min.js', '/script-tag.js'] : ['/dist/rankcast-msgpack.min.js', '/dist/rankcast.min.js', '/script-tag.js'];
      assert.deepEqual(r, { user, surface: 'home', items: 4, scripts, msgpackGlobal: enc === 'json' ? 'undefined' : 'object' });
    });
  }

  for (const enc of ['msgpack', 'json']) {
    test(`${enc}: subscribe, click, and the list re-ranked by the click`, async () => {
      const user = `browser-${enc}-${process.pid}`;
      const page = await open({ phase: 'live', enc, user });
      const r = await page.result('result');
      assert.deepEqual(r, { user, items: 4, caused: true, queued: 0, storage: null });
    });

    test(`${enc}: events tracked offline wait in localStorage and the next page sends them`, async () => {
      const user = `browser-queue-${enc}-${process.pid}`;
      const page = await open({ phase: 'queue', enc, user });
      const queued = await page.result('result');
      assert.equal(queued.ids.length, 2);
      assert.deepEqual(queued.stored, queued.ids);
      // A new tab of the same profile: what the next page load of the site sees.
      const next = await open({ phase: 'resume', enc, user });
      const resumed = await next.result('result');
      assert.deepEqual(resumed, { queuedAtStart: 2, acked: 2, queued: 0, storage: null });
    });
  }
});

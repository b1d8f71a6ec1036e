// SPDX-License-Identifier: Apache-2.0
// permessage-deflate as a browser speaks it: Chromium against `rankcast --demo --ws-deflate`.
// The server's answer asks each message to be compressed on its own
// (client_no_context_takeover); Chromium takes it, compresses everything it sends, and every
// message is understood: a welcome, then an ack for each event, with the repeated content that
// a context-keeping compressor would have referred back to. The dashboard's feed goes without
// the extension.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { launchBrowser, missingReason, openPage, startDemoServer, stopCleanly } from './harness.mjs';

const skip = missingReason();
if (skip) console.log(`# deflate browser tests skipped: ${skip}`);

describe('permessage-deflate in Chromium', { skip: skip ?? false, timeout: 60_000 }, () => {
  let server;
  let browser;
  before(async () => {
    server = await startDemoServer(['--ws-deflate']);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await stopCleanly(server);
  });

  test('negotiated with client_no_context_takeover; compressed messages all understood', async () => {
    const { page, problems } = await openPage(browser, { width: 800, height: 600 });
    await page.goto(`${server.url}/`);
    const got = await page.evaluate(async (url) => {
      const ws = new WebSocket(url, 'rankcast.v1.json');
      const messages = [];
      ws.onmessage = (e) => messages.push(JSON.parse(e.data));
      await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
      const until = async (pred) => {
        for (let i = 0; i < 300 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
      };
      ws.send(JSON.stringify({ type: 'hello', v: 1, user: 'anon-deflate-browser' }));
      await until(() => messages.some((m) => m.type === 'welcome'));
      // Twenty events alike but for their ids: a compressor keeping its context would encode
      // most of each as a reference to the one before.
      for (let i = 0; i < 20; i++) {
        ws.send(JSON.stringify({ type: 'event', id: `e${i}`, kind: 'impression', item: 'no-such-item-but-the-same-long-name' }));
      }
      await until(() => messages.filter((m) => m.type === 'ack' || m.type === 'error').length >= 20);
      const result = { extensions: ws.extensions, types: messages.map((m) => m.type), acked: messages.filter((m) => m.type === 'ack').flatMap((m) => m.ids) };
      ws.close();
      return result;
    }, `${server.url.replace('http', 'ws')}/ws`);
    assert.equal(got.extensions, 'permessage-deflate; client_no_context_takeover');
    assert.equal(got.types[0], 'welcome');
    assert.ok(!got.types.includes('error'), `no error: ${got.types.join(', ')}`);
    assert.equal(new Set(got.acked).size, 20, `acks: ${got.acked.join(', ')}`);
    assert.deepEqual(problems, []);
  });
});

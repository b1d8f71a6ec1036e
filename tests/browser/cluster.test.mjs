// SPDX-License-Identifier: Apache-2.0
// The dashboard's per-node view across a real cluster: a throwaway Kafka broker (scripts/kafka)
// and two rankcast nodes; node A's dashboard, opened with the admin token, shows both nodes,
// node B's traffic moves B's row on A's page, and B stopped is marked silent. Skipped, with
// the reason, without the broker's jars, java or kcat.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Kafka, kafkaSkipReason } from '../integration/kafka-harness.mjs';
import { DESKTOP, REPO_ROOT, launchBrowser, missingReason, openPage, screenshot, sleep, startDemoServer, stopCleanly } from './harness.mjs';
import { startLoad } from './load.mjs';

const skip = missingReason() ?? kafkaSkipReason();
if (skip) console.log(`# cluster dashboard test skipped: ${skip}`);

const ITEMS = readFileSync(join(REPO_ROOT, 'web-demo/catalog/demo-catalog.jsonl'), 'utf8')
  .split('\n').filter(Boolean).slice(0, 200).map((l) => JSON.parse(l).id);

/** The Nodes table of the page: {node: cells}. */
const nodeRows = (page) => page.$$eval('#nodes tr', (trs) => Object.fromEntries(trs.map((tr) => {
  const cells = [...tr.children].map((td) => td.textContent);
  return [cells[0], cells];
})));

describe('dashboard of a cluster', { skip: skip || false, timeout: 240_000 }, () => {
  const kafka = new Kafka();
  const token = randomBytes(12).toString('hex');
  const pseudonymKey = randomBytes(16).toString('hex'); // the same on both nodes
  const prefix = `rcops${process.pid}.`;
  let a, b, browser;
  before(async () => {
    await kafka.start();
    const common = ['--kafka', kafka.bootstrap, '--kafka-topic-prefix', prefix, '--admin-token', token,
      '--pseudonym-key', pseudonymKey];
    a = await startDemoServer([...common, '--node-id', 'ops-a']);
    b = await startDemoServer([...common, '--node-id', 'ops-b']);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await stopCleanly(a);
    await stopCleanly(b);
    await kafka.stop();
  });

  test('every node in one view, live', async () => {
    const { page, problems } = await openPage(browser, DESKTOP);
    await page.goto(`${a.url}/ops.html#token=${token}`);
    await page.waitForFunction(() => document.getElementById('feed').dataset.state === 'open');
    assert.equal(await page.evaluate(() => location.hash), '', 'the token leaves the address bar');
    await page.waitForFunction(() => document.querySelectorAll('#nodes tr').length === 2, null, { timeout: 30000 });
    let rows = await nodeRows(page);
    assert.deepEqual(Object.keys(rows).sort(), ['ops-a', 'ops-b']);
    assert.equal(rows['ops-a'][1], 'this node');
    assert.match(rows['ops-b'][1], /^heard \d+ ms ago$/);

    const load = await startLoad(`${b.url.replace('http', 'ws')}/ws`, { visitors: 5, perSecond: 10, items: ITEMS });
    try {
      await page.waitForFunction(() => {
        const row = [...document.querySelectorAll('#nodes tr')].find((tr) => tr.children[0].textContent === 'ops-b');
        return row && Number(row.children[2].textContent) >= 5 && Number(row.children[4].textContent) > 0;
      }, null, { timeout: 10000 });
      rows = await nodeRows(page);
      assert.equal(rows['ops-a'][2], '0', 'A itself has no connection but the dashboard');
      await screenshot(page, 'ops-cluster', { fullPage: true });
    } finally {
      await load.stop();
    }

    await stopCleanly(b);
    b = null;
    await page.waitForFunction(() => [...document.querySelectorAll('#nodes tr')]
      .some((tr) => tr.children[0].textContent === 'ops-b' && /^silent/.test(tr.children[1].textContent)), null, { timeout: 10000 });
    await sleep(100);
    assert.deepEqual(problems, []);
  });
});

// SPDX-License-Identifier: Apache-2.0
// Learning from history (--import) through the real server: a file of past sessions in
// which one item always followed another is learned before the server serves, so a new
// visitor who views the first is recommended the second for co-visitation, which only the
// history can have taught; bad lines are skipped, and a file that cannot be read stops the
// start with its reason.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { closeAllClients, connectHello, fixtureItems, startServer, stopServerCleanly, uniqueId } from './harness.mjs';

const dir = mkdtempSync(join(tmpdir(), 'rankcast-import-'));
const items = fixtureItems();
/* Two items of different categories, far down their categories' popularity. */
const first = items[10];
const second = items.find((it, i) => i > 20 && i % 12 >= 9 && it.category !== first.category);

/** 40 past sessions of an hour ago: view `first`, then click `second` a minute later. */
function writeHistory() {
  const t0 = Date.now() - 3600 * 1000;
  const lines = ['# ts_ms\tuser\tkind\titem'];
  for (let s = 0; s < 40; s++) {
    const at = t0 + s * 60 * 1000;
    lines.push(`${at}\thist-${s}\tview\t${first.id}`);
    lines.push(`${at + 20 * 1000}\thist-${s}\tclick\t${second.id}`);
  }
  lines.push('not a line of history', `${t0}\thist-x\tview\tno-such-item`);
  const path = join(dir, 'history.tsv');
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

let server = null;
after(async () => {
  closeAllClients();
  if (server) await stopServerCleanly(server);
});

for (const enc of ['json', 'msgpack']) {
  test(`${enc}: what the history taught reaches a new visitor's list`, async () => {
    assert.notEqual(first.category, second.category);
    server ??= await startServer({ extraArgs: ['--import', writeHistory(), '--catalog-open', 'false'] });
    const { client } = await connectHello(server, enc, { user: uniqueId('new') });
    const cold = await client.subscribe('home', { k: 10 });
    assert.equal(cold.items.find((it) => it.item === second.id && it.src === 'covisit'), undefined);
    client.send({ type: 'event', id: uniqueId('e'), kind: 'view', item: first.id });
    const recs = await client.next((m) => m.type === 'recs' && m.cause !== undefined);
    const learned = recs.items.find((it) => it.item === second.id);
    assert.ok(learned, `${second.id} is recommended after ${first.id}: ${JSON.stringify(recs.items)}`);
    assert.equal(learned.src, 'covisit');
  });
}

test('a history that cannot be read stops the start with its reason', async () => {
  await assert.rejects(
    startServer({ extraArgs: ['--import', join(dir, 'missing.tsv')], readyTimeoutMs: 5000 }),
    /missing\.tsv/,
  );
});

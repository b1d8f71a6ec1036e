// SPDX-License-Identifier: Apache-2.0
// Memory the server gives back: after a crowd of sessions has come and gone, the heap pages it
// used are returned to the system (--heap-trim-s, node.c), not kept at the high-water mark.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { closeAllClients, connectHello, httpGet, metricTotals, parsePrometheus, startServer, stopServerCleanly } from './harness.mjs';
import { eventually } from './redis-harness.mjs';

const SESSIONS = 3000;
const AT_ONCE = 200;
// Under AddressSanitizer the heap is ASan's, which malloc_trim() does not manage: there only the
// trims themselves are checked.
const SANITIZED = process.env.ASAN_OPTIONS !== undefined;

let server;
before(async () => {
  server = await startServer({ extraArgs: ['--session-idle-s', '1', '--max-conns-per-ip', '0'] });
});
after(async () => {
  closeAllClients();
  await stopServerCleanly(server);
});

function rssKb() {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${server.proc.pid}/status`, 'utf8'));
  return Number(m[1]);
}

async function metrics() {
  const res = await httpGet(server, '/metrics');
  assert.equal(res.status, 200);
  return metricTotals(parsePrometheus(res.body).samples);
}

test('after many sessions close, the heap they used is given back', async () => {
  const base = rssKb();
  for (let i = 0; i < SESSIONS; i += AT_ONCE) {
    await Promise.all(
      Array.from({ length: Math.min(AT_ONCE, SESSIONS - i) }, async (_, j) => {
        const { client } = await connectHello(server, 'json', { user: `mem-${i + j}` });
        await client.subscribe('home', { k: 20 });
      }),
    );
  }
  const peak = rssKb();
  const grown = peak - base;
  assert.ok(grown > 3000, `${SESSIONS} sessions grew the server by ${grown} KB only: nothing to measure`);
  const before = await metrics();

  closeAllClients();
  // Every session is gone (idle 1 s), then connections have been quiet long enough for a trim.
  await eventually(async () => (await metrics()).rankcast_sessions === 0, 10000, 'sessions dropped');
  const trims = await eventually(
    async () => {
      const m = await metrics();
      return m.rankcast_heap_trims_total > before.rankcast_heap_trims_total && m.rankcast_sessions === 0 ? m : null;
    },
    10000,
    'a heap trim after the sessions left',
  );
  assert.ok(trims.rankcast_heap_trim_seconds_total < 1, `trims took ${trims.rankcast_heap_trim_seconds_total} s`);
  if (SANITIZED) return;
  const left = rssKb() - base;
  // glibc alone keeps all of it: the sessions' memory sits below allocations that live on.
  assert.ok(left < grown / 2, `RSS ${left} KB over the start after the sessions left, ${grown} KB at their peak`);
});

#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Wire bytes per event of whole lists and of compact lists (PROTOCOL.md, `recs_delta`), side by
// side: one fresh server on the demo catalog, per encoding one user with two connections, one
// subscribed to whole lists and one compact (k = K, the same list), then EVENTS clicks from a
// seeded generator (two in three on an item of the list shown, as a shopper does; one in three
// on a random catalog item). Counts the bytes of every list message each connection received
// after its first (the answer to subscribe), divided by the events: what a phone pays per
// click. Uncompressed (no permessage-deflate). Deterministic but for trending (it depends on
// the clock). Writes bench/results/compact-bytes-<stamp>.{json,md}. Builds nothing.
//
//   node bench/run-compact-bytes.mjs        # EVENTS=300 K=20 SEED=1
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.env.RANKCAST_CATALOG ??= join(ROOT, 'web-demo/catalog/demo-catalog.jsonl');
const { connectHello, startServer, stopServerCleanly, uniqueId } = await import(join(ROOT, 'tests/integration/harness.mjs'));

const EVENTS = Number(process.env.EVENTS ?? 300);
const K = Number(process.env.K ?? 20);
let seed = Number(process.env.SEED ?? 1);
/** A small seeded generator (mulberry32): the same clicks on every run. */
function random() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

async function measure(server, enc) {
  const user = uniqueId('bytes');
  const { client: whole } = await connectHello(server, enc, { user });
  const { client: compact } = await connectHello(server, enc, { user });
  let shown = (await whole.subscribe('home', { k: K })).items.map((it) => it.item);
  compact.send({ type: 'subscribe', surface: 'home', k: K, compact: true });
  const first = await compact.next((m) => m.type === 'recs_delta');
  const sum = { whole: 0, compact: 0, wholeLists: 0, compactLists: 0, firstCompact: compact.sizeOf(first) };
  for (let e = 0; e < EVENTS; e++) {
    const item = random() < 2 / 3 && shown.length > 0 ? shown[Math.floor(random() * shown.length)] : server.items[Math.floor(random() * server.items.length)].id;
    const id = uniqueId('e');
    whole.send({ type: 'event', id, kind: 'click', item });
    await whole.next((m) => m.type === 'ack' && m.ids.includes(id));
    // A click that leaves the order as it was pushes nothing: then neither list comes.
    const full = await whole.next((m) => m.type === 'recs' && m.cause === id, 300).catch(() => null);
    if (full === null) continue;
    const d = await compact.next((m) => m.type === 'recs_delta' && m.cause === id);
    shown = full.items.map((it) => it.item);
    sum.whole += whole.sizeOf(full);
    sum.compact += compact.sizeOf(d);
    sum.wholeLists++;
    sum.compactLists++;
  }
  whole.close();
  compact.close();
  return {
    enc,
    events: EVENTS,
    k: K,
    whole_bytes_per_event: Math.round(sum.whole / EVENTS),
    compact_bytes_per_event: Math.round(sum.compact / EVENTS),
    ratio: Math.round((10 * sum.whole) / sum.compact) / 10,
    lists_pushed: sum.wholeLists,
    compact_first_list_bytes: sum.firstCompact,
  };
}

const server = await startServer({ extraArgs: ['--demo'] });
const results = [];
try {
  for (const enc of ['json', 'msgpack']) results.push(await measure(server, enc));
} finally {
  await stopServerCleanly(server);
}
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, 'Z');
const dir = process.env.RESULTS_DIR ?? join(ROOT, 'bench/results');
mkdirSync(dir, { recursive: true });
const md = [
  `# Wire bytes per event, whole vs compact lists (k = ${K}, ${EVENTS} clicks, demo catalog)`,
  '',
  '| encoding | whole lists, B/event | compact, B/event | ratio | lists pushed | first compact list, B |',
  '|---|---|---|---|---|---|',
  ...results.map((r) => `| ${r.enc} | ${r.whole_bytes_per_event} | ${r.compact_bytes_per_event} | ${r.ratio}× | ${r.lists_pushed} | ${r.compact_first_list_bytes} |`),
  '',
].join('\n');
writeFileSync(join(dir, `compact-bytes-${stamp}.json`), JSON.stringify(results, null, 2) + '\n');
writeFileSync(join(dir, `compact-bytes-${stamp}.md`), md);
process.stdout.write(md);

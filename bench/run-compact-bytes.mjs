#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Wire bytes per event of whole lists and of compact lists (PROTOCOL.md, `recs_delta`), side by
// side: one fresh server on the demo catalog, per encoding one user with two connections, one
// subscribed to whole lists and one compact (k = K, the same list), then EVENTS clicks from a
// seeded generator (two in three on an item of the list shown, as a shopper does; one in three
// on a random catalog item). Counts the bytes of every list message each connection received
// after its first (the answer to subscribe), divided by the events: what a phone pays per
// click. Uncompressed (no permessage-deflate). Deterministic but for trending (it depends on
// the clock). Then server CPU per event with each kind alone (CPU_EVENTS clicks, /proc). Writes
// bench/results/compact-bytes-<stamp>.{json,md}. Builds nothing.
//
//   node bench/run-compact-bytes.mjs        # EVENTS=300 CPU_EVENTS=3000 K=20 SEED=1
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.env.RANKCAST_CATALOG ??= join(ROOT, 'web-demo/catalog/demo-catalog.jsonl');
const { CompactLists, connectHello, startServer, stopServerCleanly, uniqueId } = await import(join(ROOT, 'tests/integration/harness.mjs'));
// No per-connection event rate limit: the clicks go one at a time, as fast as round trips allow.
const SERVER_ARGS = ['--demo', '--events-per-sec', '1000000', '--events-burst', '1000000'];

const EVENTS = Number(process.env.EVENTS ?? 300);
const CPU_EVENTS = Number(process.env.CPU_EVENTS ?? 2000);
const K = Number(process.env.K ?? 20);
let seed = Number(process.env.SEED ?? 1);
/** A small seeded generator (mulberry32): the same clicks on every run. */
function random() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/** Server CPU seconds so far (user + system, from /proc). */
function serverCpuS(server) {
  const f = readFileSync(`/proc/${server.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/**
 * Server CPU per event for one kind of subscription alone, on its own fresh server: CPU_EVENTS
 * clicks on items of the list shown (each leaves it, so each re-ranks it), one at a time; the
 * compact client rebuilds its lists with the harness's CompactLists. Clock ticks are 10 ms:
 * enough events make it a figure, still a rough one.
 */
async function cpuPerEvent(enc, compact) {
  const server = await startServer({ extraArgs: SERVER_ARGS });
  try {
    const { client } = await connectHello(server, enc, { user: uniqueId('cpu') });
    const lists = new CompactLists();
    const read = (m) => (m.type === 'recs_delta' ? lists.apply(m) : m);
    client.send({ type: 'subscribe', surface: 'home', k: K, ...(compact ? { compact: true } : {}) });
    let shown = read(await client.next((m) => m.type === 'recs' || m.type === 'recs_delta')).items.map((it) => it.item);
    const before = serverCpuS(server);
    for (let e = 0; e < CPU_EVENTS; e++) {
      const id = uniqueId('c');
      client.send({ type: 'event', id, kind: 'click', item: shown[e % shown.length] });
      const list = await client.next((m) => (m.type === 'recs' || m.type === 'recs_delta') && m.cause === id);
      shown = read(list).items.map((it) => it.item);
    }
    const us = ((serverCpuS(server) - before) * 1e6) / CPU_EVENTS;
    client.close();
    return Math.round(us);
  } finally {
    await stopServerCleanly(server);
  }
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

const results = [];
for (const enc of ['json', 'msgpack']) {
  // Bytes on a fresh server per encoding: what the models learned from other runs stays out.
  const server = await startServer({ extraArgs: SERVER_ARGS });
  let r;
  try {
    r = await measure(server, enc);
  } finally {
    await stopServerCleanly(server);
  }
  // CPU: whole and compact alternated, twice each, a fresh server each time (means of two).
  const cpu = { whole: [], compact: [] };
  for (let i = 0; i < 2; i++) {
    cpu.whole.push(await cpuPerEvent(enc, false));
    cpu.compact.push(await cpuPerEvent(enc, true));
  }
  r.server_cpu_us_per_event_whole = Math.round((cpu.whole[0] + cpu.whole[1]) / 2);
  r.server_cpu_us_per_event_compact = Math.round((cpu.compact[0] + cpu.compact[1]) / 2);
  results.push(r);
}
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, 'Z');
const dir = process.env.RESULTS_DIR ?? join(ROOT, 'bench/results');
mkdirSync(dir, { recursive: true });
const md = [
  `# Wire bytes per event, whole vs compact lists (k = ${K}, ${EVENTS} clicks, demo catalog)`,
  '',
  '| encoding | whole lists, B/event | compact, B/event | ratio | lists pushed | first compact list, B | server CPU µs/event, whole / compact |',
  '|---|---|---|---|---|---|---|',
  ...results.map(
    (r) =>
      `| ${r.enc} | ${r.whole_bytes_per_event} | ${r.compact_bytes_per_event} | ${r.ratio}× | ${r.lists_pushed} | ${r.compact_first_list_bytes} | ${r.server_cpu_us_per_event_whole} / ${r.server_cpu_us_per_event_compact} |`,
  ),
  '',
  `Server CPU: ${CPU_EVENTS} clicks on the list shown, one at a time, per figure, a fresh server each, whole and compact alternated twice (means); /proc clock ticks of 10 ms, so ±${Math.round(1e6 / 100 / CPU_EVENTS)} µs.`,
  '',
].join('\n');
writeFileSync(join(dir, `compact-bytes-${stamp}.json`), JSON.stringify(results, null, 2) + '\n');
writeFileSync(join(dir, `compact-bytes-${stamp}.md`), md);
process.stdout.write(md);

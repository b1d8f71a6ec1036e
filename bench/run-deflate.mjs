#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// What permessage-deflate costs and saves, with and without --ws-deflate side by side: a fresh
// server of each kind per run, CONNECTIONS clients of Node's `ws` that offer the extension and
// compress all they send (as browsers do), each subscribed to a k-item list, then RATE events
// per second in all for DURATION_S seconds. Reported per kind (medians of RUNS): bytes on the
// wire per pushed list, server CPU µs per event (from /proc), server RSS per connection after
// the load. Events name an item of the client's list (a click on what it shows) or, with
// EVENTS=random, any item of the catalog; COMPACT=1 subscribes with compact lists (PROTOCOL.md
// `recs_delta`). Writes bench/results/deflate-<stamp>.{json,md}. Builds nothing.
//
//   node bench/run-deflate.mjs             # CONNECTIONS=500 RATE=2000 DURATION_S=10 RUNS=3 K=20
//   COMPACT=1 EVENTS=random CATALOG=web-demo/catalog/demo-catalog.jsonl node bench/run-deflate.mjs
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WebSocket = createRequire(join(ROOT, 'bench/peers/package.json'))('ws');
const env = (k, d) => (process.env[k] !== undefined ? Number(process.env[k]) : d);
const CONNECTIONS = env('CONNECTIONS', 500);
const RATE = env('RATE', 2000);
const DURATION_S = env('DURATION_S', 10);
const RUNS = env('RUNS', 3);
const K = env('K', 20);
const PORT = env('PORT', 18790);
const SERVER_BIN = resolve(ROOT, process.env.SERVER_BIN ?? 'build/server/rankcast');
const CATALOG = resolve(ROOT, process.env.CATALOG ?? 'build/bench/catalog-100k.jsonl');
const RESULTS_DIR = resolve(ROOT, process.env.RESULTS_DIR ?? 'bench/results');
const COMPACT = process.env.COMPACT === '1';
const RANDOM_EVENTS = process.env.EVENTS === 'random';
if (COMPACT && !RANDOM_EVENTS) {
  console.error('run-deflate: COMPACT=1 needs EVENTS=random (a compact client does not rebuild its list here)');
  process.exit(1);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const TICK_S = 1 / 100; // /proc/<pid>/stat counts CPU in clock ticks (100 per second on Linux)

function procStat(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { cpu_s: (Number(f[11]) + Number(f[12])) * TICK_S };
}
function rssKb(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}

async function portOpen(port) {
  return new Promise((res) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); res(true); });
    s.on('error', () => res(false));
  });
}

async function startServer(deflate) {
  if (await portOpen(PORT)) throw new Error(`port ${PORT} is taken`);
  const args = ['--port', String(PORT), '--listen', '127.0.0.1', '--anonymous', '--anonymous-ids', 'chosen', '--max-conns-per-ip', '0',
    '--catalog', CATALOG, '--log-level', 'warn', ...(deflate ? ['--ws-deflate'] : [])];
  const proc = spawn(SERVER_BIN, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 300 && !(await portOpen(PORT)); i++) await sleep(100);
  return proc;
}

function openClient(i) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(`ws://127.0.0.1:${PORT}/ws`, ['rankcast.v1.json'], { perMessageDeflate: { threshold: 0 } });
    const c = { ws, lists: 0, pending: new Map(), extension: '' };
    ws.on('upgrade', (r) => { c.extension = r.headers['sec-websocket-extensions'] ?? ''; });
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'hello', v: 1, user: `anon-dfl-${i}` }));
      ws.send(JSON.stringify({ type: 'subscribe', surface: 'home', k: K, ...(COMPACT ? { compact: true } : {}) }));
    });
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'recs' || m.type === 'recs_delta') {
        c.lists++;
        if (m.type === 'recs') c.items = m.items.map((x) => x.item);
        if (c.lists === 1) res(c);
      }
    });
    ws.on('error', rej);
  });
}

async function run(deflate) {
  const proc = await startServer(deflate);
  try {
    const rss0 = rssKb(proc.pid);
    const clients = [];
    for (let i = 0; i < CONNECTIONS; i += 50) {
      clients.push(...(await Promise.all(Array.from({ length: Math.min(50, CONNECTIONS - i) }, (_, j) => openClient(i + j)))));
    }
    const negotiated = clients.filter((c) => c.extension.startsWith('permessage-deflate')).length;
    const wire0 = clients.reduce((s, c) => s + c.ws._socket.bytesRead, 0);
    const lists0 = clients.reduce((s, c) => s + c.lists, 0);
    const cpu0 = procStat(proc.pid).cpu_s;
    const t0 = performance.now();
    let sent = 0;
    while (performance.now() - t0 < DURATION_S * 1000) {
      const due = Math.floor(((performance.now() - t0) / 1000) * RATE);
      for (; sent < due; sent++) {
        const c = clients[sent % clients.length];
        const item = RANDOM_EVENTS ? catalogIds[Math.floor(Math.random() * catalogIds.length)] : c.items[sent % c.items.length];
        c.ws.send(JSON.stringify({ type: 'event', id: `e${sent}`, kind: 'view', item }));
      }
      await sleep(5);
    }
    await sleep(500);
    const cpu = procStat(proc.pid).cpu_s - cpu0;
    const wire = clients.reduce((s, c) => s + c.ws._socket.bytesRead, 0) - wire0;
    const lists = clients.reduce((s, c) => s + c.lists, 0) - lists0;
    const rss = rssKb(proc.pid);
    for (const c of clients) c.ws.terminate();
    return {
      deflate, negotiated, events: sent, lists,
      wire_bytes_per_event: wire / sent,
      cpu_us_per_event: (cpu / sent) * 1e6,
      rss_per_conn_kb: (rss - rss0) / CONNECTIONS,
    };
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
}

if (!existsSync(SERVER_BIN) || !existsSync(CATALOG)) {
  console.error('run-deflate: build first, and write the catalog (python3 bench/make-catalog.py)');
  process.exit(1);
}
const catalogIds = RANDOM_EVENTS
  ? readFileSync(CATALOG, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).id)
  : [];
const runs = [];
for (let r = 0; r < RUNS; r++) for (const deflate of [false, true]) runs.push(await run(deflate));
const summary = {};
for (const deflate of [false, true]) {
  const rs = runs.filter((r) => r.deflate === deflate);
  summary[deflate ? 'ws_deflate' : 'default'] = Object.fromEntries(
    ['wire_bytes_per_event', 'cpu_us_per_event', 'rss_per_conn_kb'].map((k) => [k, median(rs.map((r) => r[k]))]),
  );
}
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
const machine = `${os.cpus().length} CPUs, ${os.cpus()[0].model.trim()}, Linux ${os.release()}; load average ${os.loadavg()[0].toFixed(2)}`;
mkdirSync(RESULTS_DIR, { recursive: true });
writeFileSync(join(RESULTS_DIR, `deflate-${stamp}.json`), JSON.stringify({ machine, CONNECTIONS, RATE, DURATION_S, K, COMPACT, RANDOM_EVENTS, runs, summary }, null, 2));
const fmt = (x, d = 1) => x.toFixed(d);
const md = [
  `# permessage-deflate, off and on (${stamp})`, '',
  `Machine: ${machine}. ${CONNECTIONS} \`ws\` clients offering permessage-deflate and compressing all they send, k = ${K}${COMPACT ? ', compact lists' : ''}, ${RATE} events/s for ${DURATION_S} s on ${RANDOM_EVENTS ? 'random catalog items' : 'items of the client\'s list'}, catalog \`${process.env.CATALOG ?? 'build/bench/catalog-100k.jsonl'}\`; medians of ${RUNS} runs, servers alternated.`, '',
  '| server | wire bytes per event (ack + list) | server CPU µs per event | server RSS KB per connection |', '|---|---|---|---|',
  ...Object.entries(summary).map(([k, s]) => `| ${k === 'ws_deflate' ? '`--ws-deflate`' : 'default'} | ${fmt(s.wire_bytes_per_event, 0)} | ${fmt(s.cpu_us_per_event)} | ${fmt(s.rss_per_conn_kb, 2)} |`),
  '', 'Runs:', '', ...runs.map((r) => `- ${r.deflate ? '--ws-deflate' : 'default'}: negotiated ${r.negotiated}/${CONNECTIONS}, ${r.events} events, ${r.lists} lists, ${fmt(r.wire_bytes_per_event, 0)} B/event, ${fmt(r.cpu_us_per_event)} µs/event, ${fmt(r.rss_per_conn_kb, 2)} KB/conn`),
  '',
].join('\n');
writeFileSync(join(RESULTS_DIR, `deflate-${stamp}.md`), md);
console.log(md);

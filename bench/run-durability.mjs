#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Durability costs (docs/durability.md): the time from an event's send to its ack for each
// --fsync policy, beside a server without --data-dir, at a steady rate over several users;
// then how fast a restart reads the log back (REPLAY_EVENTS events). RUNS runs each, medians.
// Writes bench/results/durability-<stamp>.md (the raw numbers in its table).
//
//   node bench/run-durability.mjs            RATE=2000 SECONDS=5 RUNS=3 REPLAY_EVENTS=1000000
//   ONLY=replay node bench/run-durability.mjs   the read-back only (KEEP_LOG=DIR keeps its log there)

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import WebSocket from '../tests/node_modules/ws/index.js';

const ROOT = resolve(new URL('..', import.meta.url).pathname);
const BIN = process.env.RANKCAST_BIN ?? join(ROOT, 'build/server/rankcast');
// BASELINE_BIN: another build read-back alternates with, on the same log (side by side: this
// machine's timings move with its load).
const BASELINE_BIN = process.env.BASELINE_BIN;
const RATE = Number(process.env.RATE ?? 2000);
const SECONDS = Number(process.env.SECONDS ?? 5);
const RUNS = Number(process.env.RUNS ?? 3);
const REPLAY_EVENTS = Number(process.env.REPLAY_EVENTS ?? 1000000);
const USERS = 20;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function startServer(args, bin = BIN) {
  const port = await freePort();
  let log = '';
  // The clients name their users; a baseline build (read-back only, no clients) may predate
  // --anonymous-ids.
  const ids = bin === BIN ? ['--anonymous-ids', 'chosen'] : [];
  const proc = spawn(bin, ['--port', String(port), '--listen', '127.0.0.1', '--anonymous', ...ids, '--log-level', 'info',
    '--events-per-sec', '1000000', '--events-burst', '1000000', '--catalog-open', 'true', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const t0 = performance.now();
  while (!log.includes('msg="listening"')) {
    if (proc.exitCode !== null) throw new Error(`rankcast exited: ${log}`);
    if (performance.now() - t0 > 600000) throw new Error('not listening in 10 minutes');
    await sleep(20);
  }
  const ready = performance.now() - t0;
  const stop = () => new Promise((res) => { proc.once('exit', res); proc.kill('SIGTERM'); });
  return { port, proc, log: () => log, ready, stop };
}

function connect(port, user) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, 'rankcast.v1.json');
    ws.on('error', rej);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', v: 1, user })));
    ws.once('message', () => res(ws));
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Events at RATE per second over USERS connections for SECONDS; send-to-ack times in ms. */
async function ackLatency(args) {
  const server = await startServer(args);
  const clients = await Promise.all(Array.from({ length: USERS }, (_, i) => connect(server.port, `anon-bench-${i}`)));
  const sentAt = new Map();
  const lat = [];
  for (const ws of clients) {
    ws.on('message', (d) => {
      const m = JSON.parse(d);
      if (m.type !== 'ack') return;
      const now = performance.now();
      for (const id of m.ids) {
        lat.push(now - sentAt.get(id));
        sentAt.delete(id);
      }
    });
  }
  const total = RATE * SECONDS;
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const id = `b${i}`;
    sentAt.set(id, performance.now());
    clients[i % USERS].send(JSON.stringify({ type: 'event', id, kind: 'view', item: `p${i % 500}` }));
  }
  while (lat.length < total && performance.now() - t0 < (SECONDS + 10) * 1000) await sleep(10);
  for (const ws of clients) ws.close();
  await server.stop();
  lat.sort((a, b) => a - b);
  return { p50: pct(lat, 0.5), p99: pct(lat, 0.99), acked: lat.length };
}

/** Fills a log with REPLAY_EVENTS events, then restarts RUNS times: read-back rate and time to listen. */
async function replay() {
  const dir = process.env.KEEP_LOG ?? mkdtempSync(join(tmpdir(), 'rankcast-bench-log-'));
  try {
    let server = await startServer(['--data-dir', dir, '--fsync', 'never']);
    const clients = await Promise.all(Array.from({ length: 10 }, (_, i) => connect(server.port, `anon-fill-${i}`)));
    let acked = 0;
    for (const ws of clients) ws.on('message', (d) => { const m = JSON.parse(d); if (m.type === 'ack') acked += m.ids.length; });
    for (let i = 0; i < REPLAY_EVENTS; i += 100) {
      const events = Array.from({ length: Math.min(100, REPLAY_EVENTS - i) }, (_, j) => ({ id: `r${i + j}`, kind: 'view', item: `p${(i + j * 7) % 5000}` }));
      clients[(i / 100) % 10].send(JSON.stringify({ type: 'events', events }));
      if ((i / 100) % 50 === 49) while (acked < i - 20000) await sleep(1);
    }
    while (acked < REPLAY_EVENTS) await sleep(10);
    for (const ws of clients) ws.close();
    await server.stop();
    const runs = [];
    const baseline = [];
    for (let r = 0; r < RUNS; r++) {
      for (const [bin, into] of BASELINE_BIN ? [[BIN, runs], [BASELINE_BIN, baseline]] : [[BIN, runs]]) {
        server = await startServer(['--data-dir', dir], bin);
        const m = /msg="event log read back".* records=(\d+).* bytes=(\d+).* seconds=([\d.]+) records_per_s=(\d+)/.exec(server.log());
        into.push({ records: Number(m[1]), bytes: Number(m[2]), seconds: Number(m[3]), rate: Number(m[4]), ready_ms: server.ready });
        await server.stop();
      }
    }
    if (BASELINE_BIN) console.log('baseline', JSON.stringify(baseline), 'median s', median(baseline.map((x) => x.seconds)));
    return runs;
  } finally {
    if (!process.env.KEEP_LOG) rmSync(dir, { recursive: true, force: true });
  }
}

const rows = [];
const cases = process.env.ONLY === 'replay' ? [] : [['no --data-dir', []], ['--fsync always', ['--fsync', 'always']], ['--fsync interval', ['--fsync', 'interval']], ['--fsync never', ['--fsync', 'never']]];
for (const [name, extra] of cases) {
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const dir = mkdtempSync(join(tmpdir(), 'rankcast-bench-ack-'));
    try {
      runs.push(await ackLatency(name === 'no --data-dir' ? [] : ['--data-dir', dir, ...extra]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  rows.push({ name, p50: median(runs.map((x) => x.p50)), p99: median(runs.map((x) => x.p99)), runs });
  console.log(name, JSON.stringify(rows.at(-1)));
}
const rep = await replay();
console.log('replay', JSON.stringify(rep));

const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
const f = (x) => x.toFixed(2);
const md = [
  `# Durability costs (${stamp})`,
  '',
  `\`node bench/run-durability.mjs\` (RATE=${RATE} events/s over ${USERS} connections for ${SECONDS} s, RUNS=${RUNS}, REPLAY_EVENTS=${REPLAY_EVENTS}); the server and the client share the machine's 2 cores; the log on the machine's virtual disk.`,
  '',
  ...(rows.length === 0 ? [] : [
    '## Send to ack (ms), median of the runs',
    '',
    '| server | p50 | p99 | runs (p50 / p99) |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${f(r.p50)} | ${f(r.p99)} | ${r.runs.map((x) => `${f(x.p50)} / ${f(x.p99)}`).join('; ')} |`),
    '',
  ]),
  `## Restart: reading back ${rep[0].records} records (${(rep[0].bytes / 1e6).toFixed(1)} MB)`,
  '',
  '| run | read back (s) | records/s | start to listening (ms) |',
  '|---|---|---|---|',
  ...rep.map((r, i) => `| ${i + 1} | ${r.seconds.toFixed(3)} | ${r.rate} | ${r.ready_ms.toFixed(0)} |`),
  `| median | ${median(rep.map((r) => r.seconds)).toFixed(3)} | ${median(rep.map((r) => r.rate))} | ${median(rep.map((r) => r.ready_ms)).toFixed(0)} |`,
  '',
].join('\n');
const out = join(ROOT, `bench/results/durability-${stamp}.md`);
writeFileSync(out, md);
console.log(`wrote ${out}`);

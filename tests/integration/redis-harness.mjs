// SPDX-License-Identifier: Apache-2.0
// A real redis-server for integration tests: started on a free loopback port in a temporary
// directory, killable and restartable on the same port and data (AOF with fsync on every
// write, so a SIGKILL loses nothing Redis acknowledged), plus a minimal RESP client that
// reads values as bytes (profiles are MessagePack).

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { decode } from '@msgpack/msgpack';

import { freePort, sleep } from './harness.mjs';

export function redisAvailable() {
  return spawnSync('redis-server', ['--version']).status === 0;
}

export class Redis {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'rankcast-redis-'));
    this.proc = null;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start() {
    if (!this.port) this.port = await freePort();
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '',
      '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no', '--loglevel', 'warning'];
    this.proc = spawn('redis-server', args, { stdio: 'ignore' });
    this.exited = new Promise((res) => this.proc.on('exit', res));
    const deadline = Date.now() + 10000;
    for (;;) {
      try {
        if ((await this.command('PING')).toString() === 'PONG') return this;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`redis-server did not start on ${this.port}`);
      await sleep(50);
    }
  }

  /** Kills the server (SIGKILL by default: an outage, not a clean stop). */
  async kill(signal = 'SIGKILL') {
    if (!this.proc) return;
    this.proc.kill(signal);
    await this.exited;
    this.proc = null;
  }

  async stop() {
    await this.kill('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs one command; resolves to a Buffer, a number, null or an array; rejects on error. */
  command(...args) {
    return new Promise((res, rej) => {
      const sock = netConnect(this.port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      sock.setTimeout(3000, () => sock.destroy(new Error('redis command timed out')));
      sock.on('error', rej);
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        const parsed = parseReply(buf, 0);
        if (parsed) {
          sock.end();
          if (parsed.value instanceof Error) rej(parsed.value);
          else res(parsed.value);
        }
      });
      const parts = [`*${args.length}\r\n`];
      for (const a of args) {
        const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
        parts.push(`$${b.length}\r\n`, b, '\r\n');
      }
      sock.write(Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))));
    });
  }

  /** The decoded profile of `user`, or null. */
  async profile(user, prefix = 'rc:') {
    const v = await this.command('GET', `${prefix}p:${user}`);
    return v === null ? null : decode(v);
  }
}

function parseReply(buf, at) {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return null;
  const kind = String.fromCharCode(buf[at]);
  const line = buf.toString('utf8', at + 1, eol);
  const next = eol + 2;
  switch (kind) {
    case '+':
      return { value: Buffer.from(line), end: next };
    case '-':
      return { value: new Error(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.subarray(next, next + n), end: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const out = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, pos);
        if (!r) return null;
        out.push(r.value);
        pos = r.end;
      }
      return { value: out, end: pos };
    }
    default:
      return { value: new Error(`unexpected RESP ${kind}`), end: buf.length };
  }
}

/** Polls `fn` until it returns a truthy value (returned) or `timeoutMs` passes (throws). */
export async function eventually(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${last})`);
    await sleep(50);
  }
}

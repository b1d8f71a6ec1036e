// SPDX-License-Identifier: Apache-2.0
// Starts the real rankcast binary for the end-to-end tests: a free port, the demo catalog,
// readiness by GET /healthz, and stop/restart on the same port. RANKCAST_BIN overrides the
// binary, RANKCAST_CATALOG the catalog.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { sleep } from './fake-server.mjs';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export const RANKCAST_BIN = process.env.RANKCAST_BIN ? resolve(process.env.RANKCAST_BIN) : join(REPO_ROOT, 'build/server/rankcast');
export const RANKCAST_CATALOG = process.env.RANKCAST_CATALOG
  ? resolve(process.env.RANKCAST_CATALOG)
  : join(REPO_ROOT, 'web-demo/catalog/demo-catalog.jsonl');

/** Why the real-server tests cannot run here, or null when they can. */
export function missingBinaryReason() {
  if (!existsSync(RANKCAST_BIN)) return `rankcast binary not found at ${RANKCAST_BIN} (build it with \`ninja -C build\`, or set RANKCAST_BIN)`;
  if (!existsSync(RANKCAST_CATALOG)) return `catalog not found at ${RANKCAST_CATALOG} (set RANKCAST_CATALOG)`;
  return null;
}

export async function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/** One rankcast process on `port`; start() waits for /healthz, stop(signal) for the exit. */
export class RankcastProcess {
  constructor(port, extraArgs = []) {
    this.port = port;
    this.url = `ws://127.0.0.1:${port}/ws`;
    this.extraArgs = extraArgs;
    this.proc = null;
    this.output = '';
  }

  async start(timeoutMs = 15_000) {
    const args = ['--port', String(this.port), '--catalog', RANKCAST_CATALOG, '--log-level', 'warn', '--anonymous', '--anonymous-ids', 'chosen', ...this.extraArgs];
    // The server reads RANKCAST_* from its environment: the tests' own must not leak into it.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RANKCAST_')));
    const proc = spawn(RANKCAST_BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const keep = (d) => {
      this.output = (this.output + d.toString()).slice(-16_000);
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    this.exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`rankcast exited during start: ${RANKCAST_BIN} ${args.join(' ')}\n${this.output}`);
      try {
        const res = await fetch(`http://127.0.0.1:${this.port}/healthz`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) return this;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`rankcast not ready within ${timeoutMs} ms\n${this.output}`);
      }
      await sleep(30);
    }
  }

  /** Sends `signal` (SIGTERM: drain and exit; SIGKILL: a crash) and waits for the exit. */
  async stop(signal = 'SIGTERM', timeoutMs = 8000) {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
    this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
}

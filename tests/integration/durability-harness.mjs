// SPDX-License-Identifier: Apache-2.0
// What the durability suites share: data directories removed after the suite, a seeded
// generator for the moments of the SIGKILLs, a server with --data-dir, and the SIGKILL itself.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

import { closeAllClients, startServer } from './harness.mjs';

export const SEED = Number(process.env.RANKCAST_SEED ?? 20261207);
export const ADMIN = 'durability-admin-token';

const dirs = [];
after(() => {
  closeAllClients();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh data directory, removed when the suite ends. */
export function dataDir() {
  const d = mkdtempSync(join(tmpdir(), 'rankcast-data-'));
  dirs.push(d);
  return d;
}

/** A small deterministic generator (xorshift32). */
export function generator(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/** A server on `dir`, with no rate limit in the way and the admin API on. */
export const start = (dir, extra = []) => startServer({
  extraArgs: ['--log-level', 'info', '--data-dir', dir, '--events-per-sec', '100000', '--events-burst', '100000', '--admin-token', ADMIN, ...extra],
});

/** SIGKILL, and the server's exit by that signal. */
export async function kill9(server) {
  server.proc.kill('SIGKILL');
  const r = await server.exited;
  assert.equal(r.signal, 'SIGKILL');
  await server.stop();
}

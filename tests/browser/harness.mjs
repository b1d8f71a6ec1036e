// SPDX-License-Identifier: Apache-2.0
// Harness of the browser tests: starts the real rankcast binary in demo mode on a free port
// (bounded start, always stopped), launches Debian's Chromium through playwright-core (never
// a downloaded browser), collects every console error and page error of every page, and
// saves screenshots under build/test-artifacts/.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { freePort, serverBinary, sleep } from '../integration/harness.mjs';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = process.env.RANKCAST_ARTIFACTS
  ? resolve(process.env.RANKCAST_ARTIFACTS)
  : join(REPO_ROOT, 'build/test-artifacts');
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 375, height: 812 };

// The binary, a free port and sleep, as the integration suites find them.
export { serverBinary, sleep };

/** Why the suite cannot run here (binary or browser missing), or null. */
export function missingReason() {
  if (!existsSync(serverBinary())) return `no rankcast binary at ${serverBinary()} (build it, or set RANKCAST_BIN)`;
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (scripts/setup installs Debian's chromium)`;
  return null;
}

/**
 * Starts `rankcast --demo` (the demo catalog, the pages of web-demo/, the SDK under /sdk/src/) and
 * waits for /healthz. `stop()` sends SIGTERM, then SIGKILL after 5 s; it is idempotent.
 * `port` starts it on a given port (a restart where pages wait for it), else on a free one.
 * @param {string[]} [extraArgs]
 * @param {{port?: number}} [opts]
 */
export async function startDemoServer(extraArgs = [], opts = {}) {
  const port = opts.port ?? await freePort();
  const args = ['--demo', '--port', String(port), '--listen', '127.0.0.1', '--log-level', 'warn', ...extraArgs];
  // The tests' own environment must not configure the server behind their back.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RANKCAST_')));
  const proc = spawn(serverBinary(), args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log = (log + d).slice(-32768); });
  let exit = null;
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res((exit = { code, signal }))));
  let stopping = null;
  const server = {
    port,
    pid: proc.pid,
    url: `http://127.0.0.1:${port}`,
    log: () => log,
    stop() {
      stopping ??= (async () => {
        if (exit === null) proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
        return exit;
      })();
      return stopping;
    },
  };
  const deadline = Date.now() + 15000;
  for (;;) {
    if (exit !== null) throw new Error(`rankcast exited during start (${JSON.stringify(exit)})\n${log}`);
    try {
      const res = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return server;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`rankcast not ready within 15 s\n${log}`);
    }
    await sleep(50);
  }
}

/** Stops the server and asserts a clean exit (code 0 on SIGTERM: no sanitizer report, no crash). */
export async function stopCleanly(server) {
  if (!server) return;
  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `rankcast did not exit cleanly\n${server.log()}`);
}

/** Chromium for tests: headless, no sandbox (containers), nothing that reaches the network. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A new page in its own context (its own localStorage) whose console errors, page errors
 * and failed requests are collected in `problems`.
 * @param {import('playwright-core').Browser} browser
 * @param {{width: number, height: number}} viewport
 * @param {{storageFrom?: import('playwright-core').BrowserContext}} [opts]
 */
export async function openPage(browser, viewport, opts = {}) {
  const context = opts.storageFrom ?? await browser.newContext({ viewport, reducedMotion: 'no-preference' });
  const page = await context.newPage();
  if (opts.storageFrom) await page.setViewportSize(viewport);
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  return { page, context, problems };
}

/**
 * Saves a screenshot as build/test-artifacts/<name>.png (the viewport, or the whole page);
 * returns the path.
 */
export async function screenshot(page, name, { fullPage = false } = {}) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage });
  return path;
}

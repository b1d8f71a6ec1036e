// SPDX-License-Identifier: Apache-2.0
// A minimal headless-Chromium driver over the DevTools protocol (with `ws`, already a dev
// dependency): launch, open a tab, navigate, and evaluate an expression that may return a
// promise. Enough for the SDK's browser test without a browser-automation dependency.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import WebSocket from 'ws';

export const CHROMIUM_BIN = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

export const chromiumMissing = () => (existsSync(CHROMIUM_BIN) ? null : `chromium not found at ${CHROMIUM_BIN} (set CHROMIUM_BIN)`);

export class Browser {
  static async launch() {
    const profile = mkdtempSync(join(tmpdir(), 'rankcast-chromium-'));
    // The machine's network is closed: every background connection Chromium tries would be
    // refused (and slow it down), so all of them are switched off; /dev/shm may be small.
    const args = ['--headless=new', '--remote-debugging-port=0', `--user-data-dir=${profile}`, '--no-first-run', '--no-default-browser-check', '--disable-gpu', '--disable-extensions', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--disable-dev-shm-usage', 'about:blank'];
    // Chromium refuses to run as root with its sandbox; test machines often are root.
    if (process.getuid?.() === 0) args.unshift('--no-sandbox');
    // Its own process group, so closing kills every Chromium process, not just the first.
    const proc = spawn(CHROMIUM_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let log = '';
    const endpoint = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`chromium did not start:\n${log}`)), 20_000);
      proc.stderr.on('data', (d) => {
        log += d.toString();
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(log);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      proc.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`chromium exited (${code}):\n${log}`));
      });
    });
    const ws = new WebSocket(endpoint, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new Browser(proc, ws, profile);
  }

  constructor(proc, ws, profile) {
    this.proc = proc;
    this.ws = ws;
    this.profile = profile;
    this.nextId = 1;
    this.pending = new Map();
    this.gone = null;
    // If Chromium dies or its socket closes, every command still waiting fails at once
    // instead of leaving the test hanging.
    const fail = (why) => {
      this.gone ??= why;
      for (const [, p] of this.pending) p.reject(new Error(`${p.method}: ${why}`));
      this.pending.clear();
    };
    ws.on('close', () => fail('the browser connection closed'));
    proc.on('exit', (code, signal) => fail(`chromium exited (${code ?? signal})`));
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      const p = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
      else p.resolve(msg.result);
    });
  }

  send(method, params = {}, sessionId = undefined, timeoutMs = 20_000) {
    if (this.gone) return Promise.reject(new Error(`${method}: ${this.gone}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const settle = (fn) => (v) => {
        clearTimeout(timer);
        fn(v);
      };
      this.pending.set(id, { resolve: settle(resolve), reject: settle(reject), method });
      this.ws.send(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }));
    });
  }

  /** Opens a tab; returns a Page. */
  async newPage() {
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    return new Page(this, sessionId);
  }

  async close() {
    this.ws.close();
    // A process that already died from a signal has exitCode null but signalCode set, and its
    // 'exit' has fired already: waiting for it again would never end.
    const exited = () => this.proc.exitCode !== null || this.proc.signalCode !== null;
    if (!exited()) {
      const done = new Promise((resolve) => {
        if (exited()) resolve();
        else this.proc.once('exit', resolve);
      });
      try {
        process.kill(-this.proc.pid, 'SIGKILL');
      } catch {
        this.proc.kill('SIGKILL');
      }
      await done;
    } else {
      try {
        process.kill(-this.proc.pid, 'SIGKILL'); // helpers of a crashed browser, if any
      } catch {
        // none left
      }
    }
    rmSync(this.profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}

class Page {
  constructor(browser, sessionId) {
    this.browser = browser;
    this.sessionId = sessionId;
  }

  navigate(url) {
    return this.browser.send('Page.navigate', { url }, this.sessionId);
  }

  /** Evaluates `expression` in the page, awaiting a promise; returns its JSON value. */
  async evaluate(expression) {
    const r = await this.browser.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, this.sessionId);
    if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value;
  }

  /** Waits until `window[name]` exists (the page's module ran), then awaits it. */
  async result(name, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.evaluate(`typeof window.${name} !== 'undefined'`))) {
      if (Date.now() > deadline) throw new Error(`page did not set window.${name} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.evaluate(`Promise.race([window.${name}, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), ${timeoutMs}))])`);
  }
}

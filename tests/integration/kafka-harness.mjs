// SPDX-License-Identifier: Apache-2.0
// A real Kafka broker for integration tests, through the project's own script (scripts/kafka,
// see docs/infrastructure.md): started once per test file in a throwaway directory on free
// ports, owned by this process (the script's watcher stops it if the test runner dies), and
// stoppable and restartable on the same ports and data for outage tests. Plus helpers to read
// the broker's metadata (kcat) and to wait for a rankcast node to be ready.

import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { REPO_ROOT, httpGet, sleep } from './harness.mjs';

const KAFKA_SCRIPT = join(REPO_ROOT, 'scripts/kafka');

/**
 * Why the Kafka tests cannot run here (a string for `describe(…, {skip})`), or false: the
 * broker jars are installed (scripts/kafka classpath checks), and java and kcat are there.
 */
export function kafkaSkipReason() {
  if (spawnSync('kcat', ['-V']).status !== 0) return 'kcat is not installed (scripts/setup installs it)';
  if (spawnSync('java', ['-version']).status !== 0) return 'java is not installed (scripts/setup installs it)';
  const cp = spawnSync(KAFKA_SCRIPT, ['classpath'], { encoding: 'utf8' });
  if (cp.status !== 0) return `the Kafka jars are not installed (run scripts/setup): ${cp.stderr.trim()}`;
  return false;
}

/** Runs scripts/kafka with `args`; resolves to its stdout, rejects with its stderr. Bounded. */
function runKafkaScript(args, timeoutMs) {
  return new Promise((res, rej) => {
    execFile(KAFKA_SCRIPT, args, { cwd: REPO_ROOT, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) rej(new Error(`scripts/kafka ${args.join(' ')} failed (${err.code ?? err.signal}):\n${stderr}`));
      else res(stdout);
    });
  });
}

/** Parses the KEY=VALUE lines the scripts print (values are plain paths and numbers). */
function parseEnvLines(text) {
  const env = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2];
  }
  return env;
}

/**
 * One broker in a throwaway directory. `start()` formats and starts it (or, after
 * `stop({keep: true})`, restarts the same broker: same cluster id, ports and data); `stop()`
 * stops it and, unless `keep`, removes its directory.
 */
export class Kafka {
  constructor() {
    // Not created here: scripts/kafka makes it and marks it as its own.
    this.dir = join(tmpdir(), `rankcast-kafka-it-${process.pid}-${randomBytes(4).toString('hex')}`);
    this.bootstrap = null;
    this.pid = null;
    this.running = false;
  }

  async start({ timeoutS = 90 } = {}) {
    const out = await runKafkaScript(
      ['start', '--dir', this.dir, '--owner', String(process.pid), '--timeout', String(timeoutS)],
      (timeoutS + 30) * 1000,
    );
    const env = parseEnvLines(out);
    if (!env.KAFKA_BOOTSTRAP || !env.KAFKA_PID) throw new Error(`scripts/kafka start printed no KAFKA_BOOTSTRAP:\n${out}`);
    this.bootstrap = env.KAFKA_BOOTSTRAP;
    this.pid = Number(env.KAFKA_PID);
    this.running = true;
    return this;
  }

  /** Stops the broker (SIGTERM, SIGKILL after `timeoutS`); removes its data unless `keep`. */
  async stop({ keep = false, timeoutS = 20 } = {}) {
    if (!existsSync(this.dir)) return;
    const args = ['stop', '--dir', this.dir, '--timeout', String(timeoutS)];
    if (keep) args.push('--keep');
    await runKafkaScript(args, (timeoutS + 15) * 1000);
    this.running = false;
  }

  /** The last lines of the broker's log, to explain a failure. */
  logTail(lines = 30) {
    try {
      return readFileSync(join(this.dir, 'logs/server.log'), 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no broker log)';
    }
  }

  /**
   * The broker's topics: {name: partitionCount}, from a metadata request (kcat -L -J). Every
   * partition must have a leader to be counted.
   */
  topics() {
    const r = spawnSync('kcat', ['-b', this.bootstrap, '-L', '-J', '-m', '5'], { encoding: 'utf8', timeout: 15000 });
    if (r.status !== 0) throw new Error(`kcat -L failed: ${r.stderr}`);
    const meta = JSON.parse(r.stdout);
    const out = {};
    for (const t of meta.topics ?? []) {
      out[t.topic] = (t.partitions ?? []).filter((p) => p.leader >= 0).length;
    }
    return out;
  }
}

/**
 * Waits until GET /readyz answers 200 with a bus that is Kafka and ok; resolves to the parsed
 * body. Rejects with the last answer after `timeoutMs`.
 */
export async function waitReady(server, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  for (;;) {
    try {
      last = await httpGet(server, '/readyz');
      if (last.status === 200) {
        const body = JSON.parse(last.body);
        if (body.bus?.backend === 'kafka' && body.bus.ok === true) return body;
      }
    } catch (e) {
      last = { status: 'error', body: e.message };
    }
    if (Date.now() > deadline) {
      throw new Error(`${server.httpUrl}/readyz not ready with the Kafka bus within ${timeoutMs} ms: ${last?.status} ${last?.body}\n${server.output()}`);
    }
    await sleep(100);
  }
}

/** The pids of the live (non-zombie) children of process `pid`, from /proc. */
export function childPids(pid) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid && fields[0] !== 'Z') out.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** True while process `pid` exists and is not a zombie. */
export function pidAlive(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return !/^State:\s*Z/m.test(status);
  } catch {
    return false;
  }
}

